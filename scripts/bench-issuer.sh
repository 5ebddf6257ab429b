#!/usr/bin/env bash
# Token issuance over HTTP (ES256, client credentials), driven by wrk.
# Usage: scripts/bench-issuer.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
cargo run --release -p tollgate-bench --bin issuer_bench -- "${1:-5}"
