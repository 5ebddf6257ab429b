#!/usr/bin/env bash
# Credits on Redis against credits in memory: axum + Tollgate, driven by wrk.
# The servers run on core 0, wrk on core 1 (when taskset is present).
# Usage: scripts/bench-credits.sh [seconds-per-run]   (CREDITS_BENCH_ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
cargo build --release -p tollgate-bench --bin credits_bench
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
"${PIN[@]}" target/release/credits_bench "${1:-2}"
