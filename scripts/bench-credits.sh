#!/usr/bin/env bash
# Credits on Redis against credits in memory: axum + Tollgate, driven by wrk.
# Usage: scripts/bench-credits.sh [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
cargo run --release -p tollgate-bench --bin credits_bench -- "${1:-5}"
