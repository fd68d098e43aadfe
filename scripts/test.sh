#!/usr/bin/env bash
# Runs the whole test suite: lint, format and type checks, then every test against real processes,
# sockets, sshd, nginx and a headless browser. Installs what the system tests need when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-node.sh

# Debian packages the system tests drive (binary to look for, package that provides it).
needed=()
for pair in chromium:chromium sshd:openssh-server ssh:openssh-client openssl:openssl nginx:nginx redis-server:redis-server haproxy:haproxy; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || needed+=("${pair#*:}")
done
if [ "${#needed[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "mcp-relay tests: installing ${needed[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" >&2
  else
    echo "mcp-relay tests need these Debian packages: ${needed[*]} (run as root, or install them)" >&2
    exit 1
  fi
fi

npm ci --no-audit --no-fund >&2
npm test
