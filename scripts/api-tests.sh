#!/usr/bin/env bash
# The HTTP API tested from outside, as an agent framework would use it: starts the built
# `sandboxer serve` on a free loopback port with a throw-away data directory, creates API keys for
# two tenants, runs the pytest suite in tests/python (httpx), the E2B SDK suite in tests/e2b (once
# per SDK venv of scripts/e2b-sdk.sh), then schemathesis against
# openapi.yaml and the live server (no 5xx, every response matches the schema), and stops the
# server. Needs root (the container backend). Installs httpx, pytest, websockets, selenium and schemathesis from PyPI (the monitor test drives Debian's chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-.build/debug/sandboxer}
python3 -m pip install --quiet --disable-pip-version-check httpx pytest schemathesis websockets selenium 2>&1 | grep -v "Running pip as the 'root'" || true

DATA=$(mktemp -d /tmp/sandboxer-api-tests.XXXXXX)
# Host-side state (bundles, agent sockets) of this server only, not the machine's /run/sandboxer.
export SANDBOXER_STATE_DIR=$DATA.state
mkdir -m 755 "$SANDBOXER_STATE_DIR"
# The code interpreter's template (tests/e2b): built once per machine into the machine cache
# (a minute, PyPI through the build's egress), then only copied into each data directory.
"$BIN" template code-interpreter --data "$DATA" \
    || echo "api-tests: the code-interpreter-v1 template could not be made; tests/e2b/test_code_interpreter.py will fail"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SANDBOXER_URL=http://127.0.0.1:$PORT SANDBOXER_BIN=$PWD/$BIN SANDBOXER_DATA=$DATA
# No configuration file of the machine's (/etc/sandboxer/config.yaml) reaches the test servers.
export SANDBOXER_CONFIG=
server=""
# Sandboxes outlive a server stop by design: delete every one the tests left, then stop the server.
delete_all() {
    for key in "${SANDBOXER_API_KEY:-}" "${SANDBOXER_API_KEY_B:-}"; do
        [ -n "$key" ] || continue
        python3 - "$SANDBOXER_URL" "$key" <<'PY' || true
import sys, httpx
url, key = sys.argv[1], sys.argv[2]
h = {"Authorization": f"Bearer {key}"}
cursor = None
while True:
    r = httpx.get(f"{url}/v1/sandboxes", headers=h, params={"state": "running,paused,hibernated", **({"cursor": cursor} if cursor else {})}, timeout=30)
    if r.status_code != 200: break
    body = r.json()
    for sb in body.get("items", []): httpx.delete(f"{url}/v1/sandboxes/{sb['id']}", headers=h, timeout=60)
    cursor = body.get("next_cursor")
    if not cursor: break
PY
    done
}
start_server() {
    # Two run workers whatever the cores: tests/python/test_runs.py fills them to keep a run queued.
    # hooks.test: the webhook receivers of tests/python/test_runs.py (loopback is reached only by name).
    "$BIN" serve --port "$PORT" --data "$DATA" --metrics-tenant api-tests-a --workers 2 --resolve hooks.test=127.0.0.1 >>"$DATA.log" 2>&1 &
    server=$!
    for _ in $(seq 1 200); do
        curl -fsS "$SANDBOXER_URL/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$server" 2>/dev/null || { tail -40 "$DATA.log"; return 1; }
        sleep 0.1
    done
    echo "api-tests: the server is not ready after 20 s"
    return 1
}
cleanup() {
    local rc=$?
    if [ -n "$server" ]; then
        # A server that died under the tests (a crash) is restarted on the same data directory so
        # the sandboxes it left running are deleted, not leaked.
        if ! kill -0 "$server" 2>/dev/null; then
            echo "api-tests: the server had exited (crash?); restarting it to delete what it left"
            rc=1
            start_server || { echo "api-tests: the restarted server did not get ready"; kill -KILL "$server" 2>/dev/null || true; }
        fi
        delete_all
        kill -TERM "$server" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$server" 2>/dev/null; then
            echo "api-tests: the server did not exit within 10 s of SIGTERM; killed"
            kill -KILL "$server"
            rc=1
        fi
        wait "$server" 2>/dev/null || true
    fi
    local left
    left=$(ls -A "$SANDBOXER_STATE_DIR"/servers/*/sandboxes 2>/dev/null | grep '^sbx-' || true)
    if [ -n "$left" ]; then
        echo "api-tests: sandboxes left in $SANDBOXER_STATE_DIR: $(echo $left)"
        # Last resort so a failed run does not leak containers: the runtime's own delete, then mounts.
        for root in "$SANDBOXER_STATE_DIR"/servers/*/runtime/crun; do
            for c in $(crun --root "$root" list -q 2>/dev/null); do crun --root "$root" delete --force "$c" || true; done
        done
        grep -o " $SANDBOXER_STATE_DIR/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
        exit 1
    fi
    rm -rf "$DATA" "$DATA.log" "$SANDBOXER_STATE_DIR"
    exit $rc
}
trap cleanup EXIT

: >"$DATA.log"
start_server || exit 1
export SANDBOXER_API_KEY=$("$BIN" key create --tenant api-tests-a --data "$DATA")
export SANDBOXER_API_KEY_B=$("$BIN" key create --tenant api-tests-b --data "$DATA")
# E2B-shaped keys of the same two tenants, for E2B's SDKs (tests/e2b).
E2B_KEY_A=$("$BIN" key create --tenant api-tests-a --e2b --data "$DATA")
E2B_KEY_B=$("$BIN" key create --tenant api-tests-b --e2b --data "$DATA")

status=0
echo "== pytest tests/python"
# PYTEST_ARGS narrows the run while working on one area (e.g. "tests/python/test_runs.py -k webhook");
# SCHEMATHESIS=0 skips schemathesis then. Both default to everything.
python3 -m pytest -q ${PYTEST_ARGS:-tests/python} || status=1
# E2B's unmodified SDKs against the same server, once per pinned SDK pair (scripts/e2b-sdk.sh makes
# the venvs: e2b 2.45.1 + e2b-code-interpreter 2.9.1, and the newest 2.x of both). E2B=0 skips them;
# E2B_PYTEST_ARGS narrows them (e.g. "tests/e2b/test_control.py -k paging").
if [ "${E2B:-1}" != 0 ]; then
    venvs=$(scripts/e2b-sdk.sh) || { echo "api-tests: the E2B SDK venvs could not be made"; status=1; venvs=""; }
    for venv in $venvs; do
        echo "== pytest tests/e2b with $(basename "$venv")"
        E2B_API_URL=$SANDBOXER_URL E2B_SANDBOX_URL=$SANDBOXER_URL E2B_API_KEY=$E2B_KEY_A E2B_API_KEY_B=$E2B_KEY_B \
            "$venv/bin/python" -m pytest -q ${E2B_PYTEST_ARGS:-tests/e2b} || status=1
    done
fi
[ "${SCHEMATHESIS:-1}" = 0 ] || { echo "== schemathesis: openapi.yaml against the live server"; schemathesis run openapi.yaml --url "$SANDBOXER_URL" -H "Authorization: Bearer $SANDBOXER_API_KEY" -H "X-API-KEY: $E2B_KEY_A" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --request-timeout 30 --generation-deterministic || status=1; }
if [ $status -ne 0 ]; then echo "== server log (last 80 lines)"; tail -80 "$DATA.log"; fi
exit $status
