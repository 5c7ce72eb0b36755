#!/usr/bin/env bash
# E2B's SDKs from PyPI, one virtualenv per pinned pair, for the tests in tests/e2b:
#   pinned: e2b==2.45.1 e2b-code-interpreter==2.9.1
#   newest: the newest 2.x of both, resolved with pip when this runs (offline: the newest cached)
# each with pytest, pytest-asyncio and httpx. Venvs are kept under
# ${SANDBOXER_CACHE:-/var/cache/sandboxer}/e2b-sdk/e2b-<v>_ci-<v> and reused.
# Prints one venv directory per line (what scripts/api-tests.sh runs tests/e2b with).
set -euo pipefail
CACHE=${SANDBOXER_CACHE:-/var/cache/sandboxer}/e2b-sdk
PY=${PYTHON:-python3}
mkdir -p "$CACHE"

# The newest 2.x of a package on PyPI (empty when PyPI cannot be asked).
newest_2x() {
    "$PY" -m pip index versions "$1" 2>/dev/null | sed -n 's/^Available versions: //p' | tr ',' '\n' | tr -d ' ' \
        | grep -E '^2\.[0-9]+(\.[0-9]+)?$' | sort -t. -k1,1n -k2,2n -k3,3n | tail -1
}

# The venv of one pair, made when missing (a half-made one, without .ok, is made again).
venv_for() {
    local e2b=$1 ci=$2 dir="$CACHE/e2b-$1_ci-$2"
    if [ ! -f "$dir/.ok" ]; then
        rm -rf "$dir"
        "$PY" -m venv "$dir" >&2
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
            "e2b==$e2b" "e2b-code-interpreter==$ci" pytest pytest-asyncio httpx >&2
        touch "$dir/.ok"
    fi
    echo "$dir"
}

venv_for 2.45.1 2.9.1
e2b=$(newest_2x e2b || true)
ci=$(newest_2x e2b-code-interpreter || true)
if [ -n "$e2b" ] && [ -n "$ci" ]; then
    [ "${e2b}_${ci}" = "2.45.1_2.9.1" ] || venv_for "$e2b" "$ci"
else
    # Offline: the newest pair made before, if any other than the pinned one.
    newest=$(ls -d "$CACHE"/e2b-*_ci-* 2>/dev/null | grep -v '/e2b-2.45.1_ci-2.9.1$' | sort -V | tail -1 || true)
    if [ -n "$newest" ] && [ -f "$newest/.ok" ]; then
        echo "e2b-sdk: PyPI cannot be asked for the newest 2.x; using $newest" >&2
        echo "$newest"
    else
        echo "e2b-sdk: PyPI cannot be asked for the newest 2.x and none is cached; only the pinned SDKs run" >&2
    fi
fi
