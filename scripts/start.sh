#!/usr/bin/env bash
# Installs mcp-relay's dependencies and starts the gateway with the bundled 3D demo.
# Prints the MCP URL, an API key and a ready-to-paste Claude Desktop entry. Extra args go to
# `mcp-relay demo`: --port N (default 8787), --dir DIR (default .relay).
set -euo pipefail
cd "$(dirname "$0")/.."

# A taken port first, before anything changes: `npm ci` below would replace the node_modules a demo
# that is still running on that port uses.
port=8787
previous=""
for arg in "$@"; do
  case "$arg" in
    --port=*) port="${arg#--port=}" ;;
  esac
  if [ "$previous" = "--port" ]; then port="$arg"; fi
  previous="$arg"
done
if [ "$port" != "0" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "mcp-relay: port $port on 127.0.0.1 is already taken, perhaps by a demo still running (stop it with Ctrl-C); or pick another port: scripts/start.sh --port N" >&2
  exit 1
fi

. scripts/ensure-node.sh
npm ci --no-audit --no-fund >&2
echo "mcp-relay: to run \`mcp-relay\` from any shell, add this alias to ~/.bashrc (or run \`npm link\` here):" >&2
echo "  alias mcp-relay='$(command -v node) $PWD/bin/mcp-relay.js'" >&2
exec node bin/mcp-relay.js demo "$@"
