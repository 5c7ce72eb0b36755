#!/usr/bin/env bash
# `make run`'s server part: starts `sandboxer serve` on a loopback port with a throw-away data
# directory, creates an API key, drives one sandbox over HTTP with curl (create, exec, upload,
# download, delete), queues runs (submit, follow, list), shows network egress through the
# allowlist proxy against a loopback "package index" (mapped with --resolve), stops the server and
# prints how to run it for real.
set -euo pipefail
BIN=${1:-.build/release/sandboxer}
PORT=${SANDBOXER_DEMO_PORT:-7099}
DATA=$(mktemp -d /tmp/sandboxer-demo.XXXXXX)
chmod 755 "$DATA"   # the sandboxes' user namespace must reach their bundles under it
URL=http://127.0.0.1:$PORT
LOG=$DATA/serve.log
server=""
index=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
    if [ -n "$index" ]; then kill "$index" 2>/dev/null || true; fi
    rm -rf "$DATA"
}
trap cleanup EXIT

# A loopback "package index" for the egress part: only the operator's --resolve reaches loopback.
mkdir -p "$DATA/index" && echo "tinypkg 1.0 (served from the host's loopback)" > "$DATA/index/tinypkg.txt"
INDEX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$INDEX_PORT" --bind 127.0.0.1 --directory "$DATA/index" >/dev/null 2>&1 &
index=$!

echo "== sandboxer serve --port $PORT --data $DATA --resolve pypi.demo=127.0.0.1 (in the background)"
# Its host-side state (bundles, templates) under the throw-away directory too, so nothing is left.
SANDBOXER_STATE_DIR="$DATA/state" "$BIN" serve --port "$PORT" --data "$DATA" --resolve pypi.demo=127.0.0.1 >"$LOG" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { echo "the server exited:"; cat "$LOG"; exit 1; }
    sleep 0.1
done
curl -fsS "$URL/readyz" >/dev/null || { echo "the server did not become ready:"; cat "$LOG"; exit 1; }

echo "== sandboxer key create --tenant demo"
KEY=$("$BIN" key create --tenant demo --data "$DATA")
AUTH="Authorization: Bearer $KEY"
show() { echo "\$ $1   # with -H 'Authorization: Bearer \$KEY'"; }

show "curl -d '{\"profile\":\"default\",\"ttl\":\"10m\"}' $URL/v1/sandboxes"
created=$(curl -fsS -H "$AUTH" -d '{"profile":"default","ttl":"10m"}' "$URL/v1/sandboxes")
echo "$created"
ID=$(printf '%s' "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

show "curl -d '{\"cmd\":[\"python3\",\"-c\",\"print(6*7)\"]}' $URL/v1/sandboxes/$ID/exec"
curl -fsS -H "$AUTH" -d '{"cmd":["python3","-c","print(6*7)"]}' "$URL/v1/sandboxes/$ID/exec"; echo

printf 'name,score\nada,42\n' > "$DATA/data.csv"
show "curl -T data.csv '$URL/v1/sandboxes/$ID/files?path=/workspace/data.csv'"
curl -fsS -H "$AUTH" -T "$DATA/data.csv" "$URL/v1/sandboxes/$ID/files?path=/workspace/data.csv" >/dev/null
show "curl -d '{\"cmd\":[\"wc\",\"-l\",\"/workspace/data.csv\"]}' $URL/v1/sandboxes/$ID/exec"
curl -fsS -H "$AUTH" -d '{"cmd":["wc","-l","/workspace/data.csv"]}' "$URL/v1/sandboxes/$ID/exec" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["outcome"], r["stdout"].strip())'
show "curl '$URL/v1/sandboxes/$ID/files?path=/workspace/data.csv'"
curl -fsS -H "$AUTH" "$URL/v1/sandboxes/$ID/files?path=/workspace/data.csv"

show "curl -X DELETE $URL/v1/sandboxes/$ID"
curl -fsS -H "$AUTH" -X DELETE "$URL/v1/sandboxes/$ID" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["id"], r["state"])'

echo "== the run queue: durable runs, retried on infrastructure failures, cancellable"
show "curl -d '{\"code\":\"print(sum(range(10)))\",\"lang\":\"python\"}' $URL/v1/runs"
submitted=$(curl -fsS -H "$AUTH" -d '{"code":"print(sum(range(10)))","lang":"python","labels":{"demo":"1"}}' "$URL/v1/runs")
printf '%s' "$submitted" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["id"], r["state"])'
RUN=$(printf '%s' "$submitted" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "\$ sandboxer logs -f $RUN"
SANDBOXER_URL=$URL SANDBOXER_API_KEY=$KEY "$BIN" logs -f "$RUN"
echo "\$ sandboxer submit --wait -- sh -c 'echo from the queue; exit 3'   # exits with the run's status"
SANDBOXER_URL=$URL SANDBOXER_API_KEY=$KEY "$BIN" submit --wait -- sh -c 'echo from the queue; exit 3' && status=0 || status=$?
echo "(exit status $status)"
echo "\$ sandboxer runs"
SANDBOXER_URL=$URL SANDBOXER_API_KEY=$KEY "$BIN" runs

echo "== network egress: an allowlist profile, the proxy on the sandbox's loopback, 403 for the rest"
PROFILE="{\"name\":\"web\",\"network\":{\"mode\":\"allowlist\",\"allow\":[\"pypi.demo:$INDEX_PORT\"]}}"
show "curl -d '{\"profile\":$PROFILE}' $URL/v1/sandboxes"
WEB=$(curl -fsS -H "$AUTH" -d "{\"profile\":$PROFILE}" "$URL/v1/sandboxes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "$WEB"
run_in() { curl -fsS -H "$AUTH" -d "$(python3 -c 'import json,sys; print(json.dumps({"cmd":["sh","-c",sys.argv[1]]}))' "$1")" "$URL/v1/sandboxes/$WEB/exec" \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["stdout"].rstrip() or r["stderr"].rstrip())'; }
echo "\$ exec: curl http://pypi.demo:$INDEX_PORT/tinypkg.txt"
run_in "curl -sS -m 10 http://pypi.demo:$INDEX_PORT/tinypkg.txt"
echo "\$ exec: curl http://example.org/"
run_in "curl -sS -m 10 http://example.org/"
echo "\$ sandboxer network deny $WEB pypi.demo:$INDEX_PORT"
SANDBOXER_URL=$URL SANDBOXER_API_KEY=$KEY "$BIN" network deny "$WEB" "pypi.demo:$INDEX_PORT"
run_in "curl -sS -m 10 http://pypi.demo:$INDEX_PORT/tinypkg.txt"
echo "\$ sandboxer audit $WEB   # every decision, in order"
SANDBOXER_URL=$URL SANDBOXER_API_KEY=$KEY "$BIN" audit "$WEB" | grep -E "egress|network" || true
curl -fsS -H "$AUTH" -X DELETE "$URL/v1/sandboxes/$WEB" >/dev/null

echo "== stopping the server (SIGTERM)"
kill -TERM "$server"; wait "$server" || true; server=""
cat <<TXT
== to run it for real:
   sudo $BIN serve                         # 127.0.0.1:7070, data in /var/lib/sandboxer
   export SANDBOXER_API_KEY=\$(sudo $BIN key create --tenant me)
   $BIN create                             # prints the sandbox id
   $BIN exec SBX -- python3 -c 'print(6*7)'
   $BIN submit --wait -- python3 -c 'print(6*7)'   # a durable run from the queue
   $BIN runs; $BIN logs -f RUN; $BIN cancel RUN
   $BIN run --profile web.yaml --setup 'pip install -r requirements.txt' -- python3 main.py   # online setup, offline run
   $BIN secret set OPENAI_API_KEY --tenant acme --hosts api.openai.com < key.txt   # only acme's sandboxes, as a placeholder
   (or curl, as above: see README.md's HTTP API)
TXT
