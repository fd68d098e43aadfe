# Sourced by the other scripts: puts Node.js >= 22 first on PATH, installing it from the npm
# registry's `node` package into ~/.node22 when the machine's Node is older.
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 22 ]; then
  if [ ! -x "$HOME/.node22/node_modules/.bin/node" ]; then
    echo "mcp-relay: Node $(node --version 2>/dev/null || echo none) is too old; installing Node 22 into ~/.node22" >&2
    npm install --prefix "$HOME/.node22" --no-audit --no-fund node@22 >&2
  fi
  export PATH="$HOME/.node22/node_modules/.bin:$PATH"
fi
if [ "$(node_major)" -lt 22 ]; then
  echo "mcp-relay: Node.js 22 or newer is required (found $(node --version))" >&2
  exit 1
fi
