#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests run
# against (Debian's redis-server; PyJWT and node jose for the interop test),
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real components: the Redis tests start their own redis-server.
# curl runs the printed walkthrough in the CLI's TLS test.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# redis-cli builds the Redis Cluster the cluster tests start.
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The public test vectors live beside the checkout, not in it.
if [ -z "${TOLLGATE_VECTORS:-}" ] && [ ! -d ../shared/vectors ]; then
    echo "warning: ../shared/vectors not found; vector tests will be skipped" >&2
    export TOLLGATE_VECTORS_OPTIONAL=1
fi

# Two independent JOSE implementations (PyPI, npm) for tests/interop.rs.
if scripts/interop-setup.sh; then
    export TOLLGATE_INTEROP_REQUIRED=1
else
    echo "warning: interop tools could not be installed; tests/interop.rs will skip" >&2
fi

cargo test --workspace --all-features "$@"
