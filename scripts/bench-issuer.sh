#!/usr/bin/env bash
# Token issuance over HTTP (ES256, client credentials), driven by wrk.
# Usage: scripts/bench-issuer.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi
cargo run --release --features issuer --example issuer_bench -- "${1:-5}"
