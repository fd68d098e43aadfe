#!/usr/bin/env bash
# Installs mcp-relay's dependencies and starts the gateway with the bundled 3D demo.
# Prints the MCP URL, an API key and a ready-to-paste Claude Desktop entry. Extra args go to `mcp-relay demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-node.sh
npm ci --no-audit --no-fund >&2
exec node bin/mcp-relay.js demo "$@"
