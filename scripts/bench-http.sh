#!/usr/bin/env bash
# HTTP overhead benchmark: bare axum/actix-web against the same + Tollgate, driven by wrk.
# The servers run on core 0, wrk on core 1 (when taskset is present).
# Usage: scripts/bench-http.sh [seconds-per-run]   (HTTP_BENCH_ROUNDS, HTTP_BENCH_ONLY)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v wrk >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk
fi
cargo build --release -p tollgate-bench --bin http_bench
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
"${PIN[@]}" target/release/http_bench "${1:-2}"
