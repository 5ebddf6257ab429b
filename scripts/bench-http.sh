#!/usr/bin/env bash
# HTTP overhead benchmark: bare axum/actix-web against the same + Tollgate, driven by wrk.
# Usage: scripts/bench-http.sh [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
fi
cargo run --release --features axum,actix --example http_bench -- "${1:-5}"
