#!/usr/bin/env bash
# Fuzz Tollgate's parsers with libFuzzer on stable Rust.
# Usage: scripts/fuzz.sh TARGET [libFuzzer options...]
#        scripts/fuzz.sh all -runs=20000      (each target briefly, as CI does)
# Targets: extract jose_header payload jwks addresses token_endpoints config.
# The seed corpora live in fuzz/corpus/<target>; new finds go to a scratch
# directory, crashes to fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(extract jose_header payload jwks addresses token_endpoints config)
# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq g++ >/dev/null
fi
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/fuzz}"
target="${1:?usage: scripts/fuzz.sh TARGET|all [libFuzzer options]}"
shift
# An explicit target keeps the instrumentation off build scripts and macros.
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path fuzz/Cargo.toml --bins --target "$TRIPLE"
run() {
    local t="$1"; shift
    local scratch
    scratch="$(mktemp -d)"
    mkdir -p "fuzz/artifacts/$t"
    "$CARGO_TARGET_DIR/$TRIPLE/release/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        "$@" "$scratch" "fuzz/corpus/$t"
    rm -rf "$scratch"
}
if [ "$target" = all ]; then
    for t in "${TARGETS[@]}"; do run "$t" "$@"; done
else
    run "$target" "$@"
fi
