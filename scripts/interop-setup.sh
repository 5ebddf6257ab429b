#!/usr/bin/env bash
# Installs two independent JOSE implementations for the interop tests:
# PyJWT (PyPI) in a virtualenv and `jose` (npm), and Authlib's OAuth 2.0
# client (PyPI) for the refresh flow, under target/interop.
# Usage: scripts/interop-setup.sh [dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/interop}"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c "import jwt, cryptography, authlib, requests" 2>/dev/null; then
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q "pyjwt[crypto]>=2.8" "authlib>=1.3" "requests>=2.31"
fi
if [ ! -d "$dir/node/node_modules/jose" ]; then
    mkdir -p "$dir/node"
    (cd "$dir/node" && npm init -y >/dev/null 2>&1 && npm install --silent --no-audit --no-fund jose@5 >/dev/null 2>&1)
fi
echo "interop tools ready in $dir"
