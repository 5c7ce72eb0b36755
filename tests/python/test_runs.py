"""The durable run queue: POST /v1/runs, GET /v1/runs[/{id}], cancel, retry, logs (JSON and SSE),
webhooks, tenant fairness and the queue quota.

Most tests use the suite's server (scripts/api-tests.sh starts it with `--workers 2`, so two
`sleep` runs fill the node and a third one stays queued); the quota test starts a server of its
own with `--max-queued 5 --workers 1`.
"""
import hashlib
import hmac
import http.server
import json
import os
import random
import subprocess
import threading
import time
import uuid

import httpx
import pytest

from conftest import (FINAL_RUN_STATES, assert_problem, auth, drop_server, own_server, require_root, sse_events,
                      submit_run, wait_run)


@pytest.fixture(autouse=True)
def _root():
    require_root()


def tag():
    return uuid.uuid4().hex[:12]


def processes_matching(text):
    """PIDs whose whole command line is `text` (pgrep -f -x)."""
    out = subprocess.run(["pgrep", "-f", "-x", text], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


def wait_for(predicate, what, timeout=30, interval=0.2):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, f"{what}: not after {timeout} s"
        time.sleep(interval)


def listed(client, **params):
    r = client.get("/v1/runs", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def cancel_all(client, label):
    """Cancels every unfinished run of `label` (k=v) and waits for each to end."""
    ids = []
    for state in ("queued", "running"):
        cursor = None
        while True:
            page = listed(client, state=state, label=label, limit=1000, **({"cursor": cursor} if cursor else {}))
            ids += [r["id"] for r in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    for rid in ids:
        r = client.post(f"/v1/runs/{rid}/cancel")
        assert r.status_code in (200, 409), r.text
    for rid in ids:
        wait_run(client, rid)


@pytest.fixture
def node_full(client):
    """Fills this server's workers with tenant A's `sleep` runs (each with a marker duration);
    yields (the running runs, their label); cancels what is left afterwards."""
    label = tag()
    running = []
    seconds = random.randint(200, 299)
    queued = None
    for _ in range(12):
        run = submit_run(client, cmd=["sleep", str(seconds)], labels={"fill": label})
        # Started within a few seconds: the node had room; still queued: it is full.
        deadline = time.time() + 4
        while time.time() < deadline:
            run = client.get(f"/v1/runs/{run['id']}").json()
            if run["state"] != "queued":
                break
            time.sleep(0.1)
        if run["state"] == "queued":
            queued = run
            break
        assert run["state"] == "running", run
        running.append(run)
    assert queued is not None and running, "could not fill the node's workers"
    client.post(f"/v1/runs/{queued['id']}/cancel")
    yield {"running": running, "label": f"fill={label}", "seconds": seconds}
    cancel_all(client, f"fill={label}")


def test_submit_cmd_succeeds_with_result_and_one_attempt(client):
    run = submit_run(client, cmd=["sh", "-c", "echo hello; echo warn >&2"], labels={"suite": "runs"})
    assert run["id"].startswith("run-"), run
    assert run["state"] == "queued", run
    assert run["argv"] == ["sh", "-c", "echo hello; echo warn >&2"], run
    assert run["profile"] == "default" and run["max_attempts"] == 3 and run["priority"] == 0, run
    assert run["attempts"] == [] and run["result"] is None and run["webhook"] is None, run
    done = wait_run(client, run["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["stdout"] == "hello\n" and done["result"]["stderr"] == "warn\n", done
    assert done["result"]["exit_code"] == 0 and done["result"]["outcome"] == "ok", done
    assert len(done["attempts"]) == 1, done
    attempt = done["attempts"][0]
    assert attempt["number"] == 1 and attempt["outcome"] == "succeeded", attempt
    assert attempt["started_at"] and attempt["ended_at"] and attempt["worker"], attempt
    assert done["created_at"] <= done["started_at"] <= done["ended_at"], done
    assert done["labels"] == {"suite": "runs"}, done


def test_submit_code_and_lang(client):
    run = submit_run(client, code="import sys\nprint(6*7, sys.argv[1:])", lang="python", args=["a"])
    assert run["state"] == "queued" and run["lang"] == "python", run
    done = wait_run(client, run["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["stdout"] == "42 ['a']\n", done
    run = submit_run(client, code="echo sh:$1", lang="sh", args=["x"])
    assert wait_run(client, run["id"])["result"]["stdout"] == "sh:x\n"


def test_nonzero_exit_is_failed_and_not_retried(client):
    run = submit_run(client, cmd=["sh", "-c", "echo bad >&2; exit 3"], max_attempts=5)
    done = wait_run(client, run["id"])
    assert done["state"] == "failed", done
    assert done["result"]["exit_code"] == 3 and done["result"]["stderr"] == "bad\n", done
    assert [a["outcome"] for a in done["attempts"]] == ["failed"], done
    assert done["reason"], done
    # final: stays as it is
    time.sleep(1.5)
    again = client.get(f"/v1/runs/{run['id']}").json()
    assert again["state"] == "failed" and len(again["attempts"]) == 1, again


def test_timeout_shorter_than_sleep_is_timed_out(client):
    run = submit_run(client, cmd=["sleep", "20"], timeout="1s")
    done = wait_run(client, run["id"])
    assert done["state"] == "timed_out", done
    assert [a["outcome"] for a in done["attempts"]] == ["timed_out"], done
    assert done["result"]["outcome"] == "timeout", done


def test_stdin_and_env_reach_the_program(client):
    run = submit_run(client, cmd=["sh", "-c", "echo $FOO; cat; pwd"], env={"FOO": "bar"}, stdin="from stdin\n", cwd="/tmp")
    done = wait_run(client, run["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["stdout"] == "bar\nfrom stdin\n/tmp\n", done
    run = submit_run(client, cmd=["python3", "-c", "import sys; print(sys.stdin.buffer.read().hex())"], stdin_base64="AAH/")
    done = wait_run(client, run["id"])
    assert done["result"]["stdout"] == "0001ff\n", done


def test_idempotency_key_returns_the_first_run_per_tenant(client, client_b):
    key = "idem-" + tag()
    first = client.post("/v1/runs", json={"cmd": ["echo", "one"]}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    first = first.json()
    assert first["idempotency_key"] == key, first
    # Same key, another body: still the first run, nothing new queued.
    again = client.post("/v1/runs", json={"cmd": ["echo", "two"]}, headers={"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"] and again.json()["argv"] == ["echo", "one"], again.text
    # Another tenant's same key is its own run.
    other = client_b.post("/v1/runs", json={"cmd": ["echo", "b"]}, headers={"Idempotency-Key": key})
    assert other.status_code == 202, other.text
    assert other.json()["id"] != first["id"]
    assert wait_run(client, first["id"])["result"]["stdout"] == "one\n"
    assert wait_run(client_b, other.json()["id"])["result"]["stdout"] == "b\n"
    # After the run ended the key still names it.
    late = client.post("/v1/runs", json={"cmd": ["echo", "three"]}, headers={"Idempotency-Key": key})
    assert late.status_code == 200 and late.json()["id"] == first["id"], late.text
    assert_problem(client.post("/v1/runs", json={"cmd": ["true"]}, headers={"Idempotency-Key": "x" * 201}), 400, "invalid_request")
    assert_problem(client.post("/v1/runs", json={"cmd": ["true"]}, headers={"Idempotency-Key": "a b"}), 400, "invalid_request")


def test_other_tenant_gets_404(client, client_b):
    run = submit_run(client, cmd=["sh", "-c", "exit 3"])
    wait_run(client, run["id"])
    rid = run["id"]
    assert_problem(client_b.get(f"/v1/runs/{rid}"), 404, "not_found")
    assert_problem(client_b.post(f"/v1/runs/{rid}/cancel"), 404, "not_found")
    assert_problem(client_b.post(f"/v1/runs/{rid}/retry"), 404, "not_found")
    assert_problem(client_b.get(f"/v1/runs/{rid}/logs"), 404, "not_found")
    assert_problem(client_b.get(f"/v1/runs/{rid}/logs", headers={"Accept": "text/event-stream"}), 404, "not_found")
    assert rid not in [r["id"] for r in listed(client_b, limit=1000)["items"]]
    # the run is untouched by those
    assert client.get(f"/v1/runs/{rid}").json()["state"] == "failed"
    assert_problem(client.get("/v1/runs/run-doesnotexist"), 404, "not_found")


def test_list_filters_and_cursor_paging(client):
    t = tag()
    label = {"batch": t}
    ids = []
    for cmd in (["true"], ["false"], ["true"]):
        ids.append(submit_run(client, cmd=cmd, labels=label)["id"])
        time.sleep(0.01)  # distinct creation times
    runs = [wait_run(client, rid) for rid in ids]
    assert [r["state"] for r in runs] == ["succeeded", "failed", "succeeded"], runs
    newest_first = list(reversed(ids))

    page = listed(client, label=f"batch={t}")
    assert [r["id"] for r in page["items"]] == newest_first, page
    assert page["next_cursor"] is None, page

    # cursor paging, newest first, `limit`
    seen, cursor = [], None
    pages = 0
    while True:
        page = listed(client, label=f"batch={t}", limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2, page
        seen += [r["id"] for r in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 5, "cursor does not end"
    assert seen == newest_first and pages == 2, (seen, pages)

    assert [r["id"] for r in listed(client, label=f"batch={t}", state="failed")["items"]] == [ids[1]]
    assert [r["id"] for r in listed(client, label=f"batch={t}", state="succeeded")["items"]] == [ids[2], ids[0]]
    assert len(listed(client, label=f"batch={t}", state="failed,succeeded")["items"]) == 3
    assert listed(client, label=f"batch={t}", state="queued")["items"] == []
    assert listed(client, label=f"batch=other-{t}")["items"] == []
    # two labels must both match
    r = client.get("/v1/runs", params=[("label", f"batch={t}"), ("label", "nope=1")])
    assert r.status_code == 200 and r.json()["items"] == [], r.text

    # since: RFC 3339 (a run's created_at) and epoch seconds
    since = runs[1]["created_at"]
    assert [r["id"] for r in listed(client, label=f"batch={t}", since=since)["items"]] == [ids[2], ids[1]]
    assert listed(client, label=f"batch={t}", since=str(time.time() + 3600))["items"] == []
    assert len(listed(client, label=f"batch={t}", since="0")["items"]) == 3

    for bad in ({"state": "bogus"}, {"limit": "0"}, {"limit": "1001"}, {"since": "yesterday"}, {"label": "novalue"}, {"sort": "x"}):
        assert_problem(client.get("/v1/runs", params=bad), 400, "invalid_request")


def test_cancel_queued_running_and_finished(client, node_full):
    marker = f"sleep {node_full['seconds']}"
    # A run behind the full node stays queued: a cancel ends it at once.
    queued = submit_run(client, cmd=["sleep", str(node_full["seconds"])], labels={"fill": node_full["label"].split("=")[1]})
    time.sleep(0.5)
    r = client.post(f"/v1/runs/{queued['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled" and r.json()["attempts"] == [], r.text
    assert r.json()["ended_at"], r.text
    assert client.get(f"/v1/runs/{queued['id']}").json()["state"] == "cancelled"

    # A running one: its sandbox is killed, it ends cancelled.
    victim = node_full["running"][0]
    assert processes_matching(marker), "the running sleep is not on the host"
    r = client.post(f"/v1/runs/{victim['id']}/cancel")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] in ("running", "cancelled"), body
    if body["state"] == "running":
        assert body["cancel_requested"] is True, body
    done = wait_run(client, victim["id"], timeout=30)
    assert done["state"] == "cancelled", done
    assert done["attempts"][-1]["outcome"] == "cancelled", done

    # The others: once every fill run ended, no `sleep N` is left on the host.
    cancel_all(client, node_full["label"])
    wait_for(lambda: not processes_matching(marker), f"every '{marker}' gone", timeout=15)

    # A finished run cannot be cancelled; a queued or running one cannot be retried.
    assert_problem(client.post(f"/v1/runs/{victim['id']}/cancel"), 409, "invalid_state")


def test_retry_of_a_running_run_is_409(client, node_full):
    assert_problem(client.post(f"/v1/runs/{node_full['running'][0]['id']}/retry"), 409, "invalid_state")


def test_retry_failed_run_gets_a_second_attempt(client):
    run = submit_run(client, cmd=["sh", "-c", "echo try; exit 3"])
    done = wait_run(client, run["id"])
    assert done["state"] == "failed" and len(done["attempts"]) == 1, done
    r = client.post(f"/v1/runs/{run['id']}/retry")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] in ("queued", "running", "failed"), body  # it may be picked up at once
    assert body["result"] is None or body["state"] == "failed", body
    again = wait_run(client, run["id"])
    assert again["state"] == "failed", again
    assert [a["number"] for a in again["attempts"]] == [1, 2], again
    assert [a["outcome"] for a in again["attempts"]] == ["failed", "failed"], again
    logs = client.get(f"/v1/runs/{run['id']}/logs").json()
    assert logs["attempt"] == 2 and logs["stdout"] == "try\n", logs
    first = client.get(f"/v1/runs/{run['id']}/logs", params={"attempt": 1}).json()
    assert first["attempt"] == 1 and first["stdout"] == "try\n", first
    assert_problem(client.get(f"/v1/runs/{run['id']}/logs", params={"attempt": 0}), 400, "invalid_request")
    assert_problem(client.get(f"/v1/runs/{run['id']}/logs", params={"attempt": 3}), 404, "not_found")
    assert_problem(client.get(f"/v1/runs/{run['id']}/logs", params={"bogus": 1}), 400, "invalid_request")


def test_logs_json(client):
    run = submit_run(client, cmd=["sh", "-c", "echo out; echo err >&2; printf '\\377'"])
    wait_run(client, run["id"])
    r = client.get(f"/v1/runs/{run['id']}/logs")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    logs = r.json()
    assert logs["run_id"] == run["id"] and logs["attempt"] == 1 and logs["state"] == "succeeded", logs
    # stdout is not UTF-8 (a 0xff byte): text empty, the bytes in base64
    assert logs["stdout"] == "" and logs["stdout_base64"] == "b3V0Cv8=", logs
    assert logs["stderr"] == "err\n", logs


def test_logs_of_a_queued_run_are_empty(client, node_full):
    run = submit_run(client, cmd=["true"], labels={"fill": node_full["label"].split("=")[1]})
    logs = client.get(f"/v1/runs/{run['id']}/logs").json()
    assert logs["attempt"] == 0 and logs["stdout"] == "" and logs["stderr"] == "", logs


def test_logs_sse_follows_a_live_run(client):
    script = "for i in 1 2 3; do echo line$i; sleep 0.4; done; echo bye >&2"
    run = submit_run(client, cmd=["sh", "-c", script])
    events = []
    with client.stream("GET", f"/v1/runs/{run['id']}/logs", headers={"Accept": "text/event-stream"},
                       timeout=httpx.Timeout(60, connect=10)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for event in sse_events(r):
            events.append(event)
            if event[0] in ("run", "error"):
                break
    names = [e for e, _ in events]
    assert names[0] == "attempt" and events[0][1] == {"attempt": 1}, events
    assert names[-1] == "run", events
    final = events[-1][1]
    assert final["id"] == run["id"] and final["state"] == "succeeded", final
    stdout = "".join(d["text"] for e, d in events if e == "stdout")
    stderr = "".join(d["text"] for e, d in events if e == "stderr")
    assert stdout == "line1\nline2\nline3\n", events
    assert stderr == "bye\n", events
    assert names.count("attempt") == 1, events
    # Following a finished run replays its output and ends.
    with client.stream("GET", f"/v1/runs/{run['id']}/logs", headers={"Accept": "text/event-stream"}) as r:
        replay = list(sse_events(r))
    assert [e for e, _ in replay if e == "run"] == ["run"], replay
    assert "".join(d["text"] for e, d in replay if e == "stdout") == stdout


# ---------------------------------------------------------------------------------------------
# bad input: refused before anything is queued


def assert_nothing_queued(client, probe):
    assert listed(client, label=f"probe={probe}")["items"] == [], "a refused submit was queued"


def test_code_over_code_bytes_is_413_and_not_queued(client):
    probe = tag()
    code = "#" * (512 * 1024 + 1)
    body = assert_problem(client.post("/v1/runs", json={"code": code, "lang": "sh", "labels": {"probe": probe}}), 413, "limit_exceeded")
    assert body["name"] == "code_bytes" and body["limit"] == 512 * 1024 and body["actual"] == 512 * 1024 + 1, body
    assert_nothing_queued(client, probe)


def test_stdin_over_input_bytes_is_413_and_not_queued(client):
    probe = tag()
    body = assert_problem(client.post("/v1/runs", json={"cmd": ["cat"], "stdin": "x" * ((1 << 20) + 5), "labels": {"probe": probe}}),
                          413, "limit_exceeded")
    assert body["name"] == "input_bytes" and body["limit"] == 1 << 20 and body["actual"] == (1 << 20) + 5, body
    assert_nothing_queued(client, probe)


def test_timeout_over_the_profile_is_422(client):
    probe = tag()
    body = assert_problem(client.post("/v1/runs", json={"cmd": ["true"], "timeout": "2h", "labels": {"probe": probe}}), 422, "limit_exceeded")
    assert body["name"] == "timeout" and body["actual"] > body["limit"], body
    assert_nothing_queued(client, probe)


@pytest.mark.parametrize("body,field", [
    ({"cmd": ["true"], "bogus": 1}, "bogus"),
    ({"cmd": ["true"], "webhook": "ftp://x"}, "webhook"),
    ({"cmd": ["true"], "webhook": "http://"}, "webhook"),
    ({"cmd": ["true"], "webhook": {"url": "http://127.0.0.1:1/", "extra": 1}}, "webhook.extra"),
    ({"cmd": ["true"], "webhook": {"url": "http://127.0.0.1:1/", "secret": "short"}}, "webhook.secret"),
    ({"cmd": ["true"], "webhook": 5}, "webhook"),
    ({"cmd": ["true"], "max_attempts": 0}, "max_attempts"),
    ({"cmd": ["true"], "max_attempts": 21}, "max_attempts"),
    ({"cmd": ["true"], "priority": 5000}, "priority"),
    ({"cmd": ["true"], "isolation": "vm"}, "isolation"),
    ({"cmd": ["true"], "labels": {"": "x"}}, "labels"),
    ({"cmd": ["true"], "profile": 7}, "profile"),
    ({"code": "print(1)"}, "lang"),
    ({"cmd": ["true"], "code": "x", "lang": "sh"}, "cmd"),
    ({"cmd": ["true"], "stdin": "a", "stdin_base64": "YQ=="}, "stdin_base64"),
])
def test_bad_submit_is_400_naming_the_field(client, body, field):
    probe = tag()
    p = assert_problem(client.post("/v1/runs", json={**body, "labels": body.get("labels", {"probe": probe})}), 400, "invalid_request")
    assert p.get("field") == field or field in p["detail"], p
    assert_nothing_queued(client, probe)


def test_empty_submit_is_400(client):
    assert_problem(client.post("/v1/runs", json={}), 400, "invalid_request")
    assert_problem(client.post("/v1/runs", content=b"not json", headers={"Content-Type": "application/json"}), 400)


def test_unknown_profile_is_404_listing_known_ones(client):
    probe = tag()
    p = assert_problem(client.post("/v1/runs", json={"cmd": ["true"], "profile": "nope", "labels": {"probe": probe}}), 404, "not_found")
    assert "nope" in p["detail"] and "default" in p["detail"], p
    assert_nothing_queued(client, probe)


@pytest.mark.parametrize("path", ["/etc/hostname", "/nonexistent/p.yaml", "default.yaml", "../../etc/passwd", "/dev/null"])
def test_profile_file_paths_are_not_read(client, path):
    """A tenant names a profile or sends one; the server never reads a file path it is given
    (a file's existence or content must not show, and /dev/zero must not be read forever)."""
    probe = tag()
    p = assert_problem(client.post("/v1/runs", json={"cmd": ["true"], "profile": path, "labels": {"probe": probe}}), 404, "not_found")
    assert "default" in p["detail"] and "file path" in p["detail"], p
    assert_nothing_queued(client, probe)
    assert_problem(client.post("/v1/sandboxes", json={"profile": path}), 404, "not_found")


def test_inline_profile_and_its_limits(client):
    profile = {"extends": "default", "resources": {"timeout": "5s", "code": "1k"}}
    run = submit_run(client, code="echo inline", lang="sh", profile=profile)
    assert run["profile"] == "inline", run
    done = wait_run(client, run["id"])
    assert done["state"] == "succeeded" and done["result"]["stdout"] == "inline\n", done
    probe = tag()
    p = assert_problem(client.post("/v1/runs", json={"code": "#" * 1025, "lang": "sh", "profile": profile, "labels": {"probe": probe}}),
                       413, "limit_exceeded")
    assert p["name"] == "code_bytes" and p["limit"] == 1024 and p["actual"] == 1025, p
    p = assert_problem(client.post("/v1/runs", json={"cmd": ["true"], "timeout": "6s", "profile": profile, "labels": {"probe": probe}}),
                       422, "limit_exceeded")
    assert p["name"] == "timeout" and p["limit"] == 5000 and p["actual"] == 6000, p
    assert_problem(client.post("/v1/runs", json={"cmd": ["true"], "profile": {"bogus": 1}, "labels": {"probe": probe}}), 400, "invalid_request")
    assert_nothing_queued(client, probe)


def test_label_with_an_empty_value_can_be_listed(client):
    t = tag()
    run = submit_run(client, cmd=["true"], labels={f"empty{t}": ""})
    wait_run(client, run["id"])
    r = client.get("/v1/runs", params={"label": f"empty{t}="})
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["items"]] == [run["id"]], r.text


# ---------------------------------------------------------------------------------------------
# webhooks


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers with the next status of
    `statuses` (the last one repeats)."""

    def __init__(self, statuses=(200,), headers=None):
        self.statuses = list(statuses)
        extra = dict(headers or {})
        self.received = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.statuses[min(len(receiver.received), len(receiver.statuses) - 1)]
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body, "status": status})
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A name the suite's server maps to loopback (--resolve hooks.test=127.0.0.1): a webhook to an
        # always-blocked address is refused unless the operator mapped its name.
        self.url = f"http://hooks.test:{self.server.server_address[1]}/hook"
        self.loopback_url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(200,), headers=None):
        r = Receiver(statuses, headers)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def verify_signature(header, secret, body):
    parts = dict(p.split("=", 1) for p in header.split(","))
    assert set(parts) == {"t", "v1"}, header
    assert abs(int(parts["t"]) - time.time()) < 600, header
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), (header, expected)


def header(delivery, name):
    return {k.lower(): v for k, v in delivery["headers"].items()}.get(name.lower())


def test_webhook_with_given_secret(client, receiver):
    hook = receiver()
    secret = "s3cret-" + tag() + "-0123456789"
    run = submit_run(client, cmd=["echo", "hooked"], webhook={"url": hook.url, "secret": secret})
    assert run["webhook"]["url"] == hook.url and run["webhook"]["secret"] == secret, run
    assert run["webhook"]["state"] == "waiting" and run["webhook"]["deliveries"] == 0, run
    wait_for(lambda: hook.received, "a webhook delivery", timeout=60)
    d = hook.received[0]
    assert d["path"] == "/hook"
    assert header(d, "content-type").startswith("application/json")
    assert header(d, "x-sandboxer-event") == "run.finished"
    assert header(d, "x-sandboxer-delivery") == f"{run['id']}.1"
    verify_signature(header(d, "x-sandboxer-signature"), secret, d["body"])
    sent = json.loads(d["body"])
    assert sent["id"] == run["id"] and sent["state"] == "succeeded", sent
    assert sent["result"]["stdout"] == "hooked\n", sent
    assert "secret" not in (sent.get("webhook") or {}) or sent["webhook"]["secret"] is None, sent
    # a wrong secret does not verify
    with pytest.raises(AssertionError):
        verify_signature(header(d, "x-sandboxer-signature"), secret + "x", d["body"])
    done = wait_for(lambda: (lambda r: r if r["webhook"]["state"] == "delivered" else None)(client.get(f"/v1/runs/{run['id']}").json()),
                    "webhook state delivered")
    assert done["webhook"]["deliveries"] == 1, done
    assert done["webhook"].get("secret") is None, done
    time.sleep(1)
    assert len(hook.received) == 1, hook.received


def test_a_webhook_to_a_blocked_address_is_refused_and_never_sent(client, receiver):
    hook = receiver()
    run = submit_run(client, cmd=["true"], webhook=hook.loopback_url)
    done = wait_for(lambda: (lambda r: r if r["webhook"]["state"] == "failed" else None)(client.get(f"/v1/runs/{run['id']}").json()),
                    "webhook state failed", timeout=60)
    assert done["webhook"]["deliveries"] == 1, done
    assert hook.received == []


def test_webhook_with_generated_secret(client, receiver):
    hook = receiver()
    run = submit_run(client, cmd=["sh", "-c", "exit 4"], webhook=hook.url)
    secret = run["webhook"]["secret"]
    assert isinstance(secret, str) and len(secret) >= 16, run
    # shown once: not in GET, and an idempotent replay does not show it either
    assert client.get(f"/v1/runs/{run['id']}").json()["webhook"].get("secret") is None
    wait_for(lambda: hook.received, "a webhook delivery", timeout=60)
    d = hook.received[0]
    verify_signature(header(d, "x-sandboxer-signature"), secret, d["body"])
    assert json.loads(d["body"])["state"] == "failed"


def test_webhook_retried_after_500(client, receiver):
    hook = receiver(statuses=(500, 200))
    run = submit_run(client, cmd=["true"], webhook={"url": hook.url, "secret": "0123456789abcdef-" + tag()})
    wait_for(lambda: len(hook.received) >= 2, "a second webhook delivery", timeout=90)
    assert [d["status"] for d in hook.received[:2]] == [500, 200]
    assert header(hook.received[1], "x-sandboxer-delivery") == f"{run['id']}.2"
    done = wait_for(lambda: (lambda r: r if r["webhook"]["state"] == "delivered" else None)(client.get(f"/v1/runs/{run['id']}").json()),
                    "webhook state delivered")
    assert done["webhook"]["deliveries"] >= 2, done


def test_a_webhook_redirect_is_never_followed(client, receiver):
    # The attack: a receiver the operator allowed answers 302 to an unmapped loopback listener.
    inside = receiver()
    redirector = receiver(statuses=(302,), headers={"Location": inside.loopback_url})
    run = submit_run(client, cmd=["true"], webhook=redirector.url)
    seen = wait_for(lambda: (lambda r: r if r["webhook"]["deliveries"] >= 1 else None)(client.get(f"/v1/runs/{run['id']}").json()),
                    "a first webhook try", timeout=60)
    assert redirector.received
    assert seen["webhook"]["state"] == "pending", seen  # a 3xx is a failed try, retried later
    time.sleep(1)
    assert inside.received == [], "the redirect target got the signed run"


class Stalling:
    """A TCP listener on 127.0.0.1 that reads a request and answers its status line one byte every
    `every` seconds, for as long as the client stays (a receiver that never finishes a reply)."""

    def __init__(self, every=1.0):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted = 0
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()
        self.every = every
        self.stop = threading.Event()
        self.url = f"http://hooks.test:{self.sock.getsockname()[1]}/slow"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        with self.lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            conn.recv(65536)
            for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
                if self.stop.is_set():
                    break
                conn.send(bytes([b]))
                time.sleep(self.every)
        except OSError:
            pass
        finally:
            with self.lock:
                self.active -= 1
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def test_a_slow_receiver_does_not_hold_up_another_tenants_webhooks(client, client_b, receiver):
    slow = Stalling()
    try:
        for _ in range(8):
            submit_run(client, cmd=["true"], webhook=slow.url)
        wait_for(lambda: slow.accepted >= 1, "the slow receiver's first connection", timeout=60)
        hook = receiver()
        run = submit_run(client_b, cmd=["true"], webhook=hook.url)
        # Tenant B's delivery goes out while tenant A's receiver still dribbles its replies.
        wait_for(lambda: hook.received, "the other tenant's webhook", timeout=30)
        assert client_b.get(f"/v1/runs/{run['id']}").json()["webhook"]["state"] in ("pending", "delivered")
        # Tenant A holds at most its per-tenant share of delivery slots (2) at once.
        assert slow.most_active <= 2, slow.most_active
    finally:
        slow.close()


def test_webhook_on_cancel_of_queued_run(client, receiver, node_full):
    hook = receiver()
    run = submit_run(client, cmd=["true"], webhook=hook.url, labels={"fill": node_full["label"].split("=")[1]})
    r = client.post(f"/v1/runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    wait_for(lambda: hook.received, "a webhook for the cancelled run", timeout=60)
    assert json.loads(hook.received[0]["body"])["state"] == "cancelled"


# ---------------------------------------------------------------------------------------------
# fairness between tenants


def test_one_tenants_backlog_does_not_starve_another(client, client_b):
    label = f"fair={tag()}"
    k, v = label.split("=")
    try:
        for _ in range(200):
            submit_run(client, cmd=["true"], labels={k: v})
        b = submit_run(client_b, cmd=["echo", "b"])
        done = wait_run(client_b, b["id"], timeout=120)
        a_queued = len(listed(client, state="queued", label=label, limit=1000)["items"])
        assert done["state"] == "succeeded", done
        assert a_queued > 0, "tenant A's backlog drained before tenant B's single run finished: no evidence of fairness"
    finally:
        cancel_all(client, label)


# ---------------------------------------------------------------------------------------------
# the queue quota: 429 with Retry-After, nothing accepted is dropped


@pytest.fixture(scope="module")
def small_queue_server():
    server, key = own_server("sandboxer-runs-quota-", "q", args=["--max-queued", "5", "--workers", "1"])
    try:
        with httpx.Client(base_url=server.url, headers=auth(key), timeout=httpx.Timeout(60, connect=10)) as c:
            yield c
            for state in ("queued", "running"):
                for run in c.get("/v1/runs", params={"state": state, "limit": 1000}).json()["items"]:
                    c.post(f"/v1/runs/{run['id']}/cancel")
            for run in c.get("/v1/runs", params={"limit": 1000}).json()["items"]:
                wait_run(c, run["id"], timeout=60)
    finally:
        drop_server(server)


def test_flood_beyond_max_queued_is_429_and_keeps_what_was_accepted(small_queue_server):
    c = small_queue_server
    blocker = submit_run(c, cmd=["sleep", "25"])
    wait_run(c, blocker["id"], until={"running"}, timeout=30)
    accepted = [submit_run(c, cmd=["echo", str(i)])["id"] for i in range(5)]
    refused = 0
    for i in range(30):
        r = c.post("/v1/runs", json={"cmd": ["echo", "flood", str(i)]})
        p = assert_problem(r, 429, "quota_exceeded")
        assert int(r.headers["retry-after"]) >= 1, r.headers
        assert p.get("retry_after") == int(r.headers["retry-after"]), p
        refused += 1
    assert refused == 30
    # Every accepted run is still there, queued.
    for rid in accepted:
        assert c.get(f"/v1/runs/{rid}").json()["state"] == "queued"
    assert len(c.get("/v1/runs", params={"limit": 1000}).json()["items"]) == 6
    # An idempotent replay of an accepted run is not a new run: 200, even at the quota.
    key = "quota-" + tag()
    c.post(f"/v1/runs/{accepted[0]}/cancel")
    first = c.post("/v1/runs", json={"cmd": ["echo", "keyed"]}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    accepted.append(first.json()["id"])
    replay = c.post("/v1/runs", json={"cmd": ["echo", "keyed"]}, headers={"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"], replay.text
    # Cancel the blocker: the accepted runs all run to their end.
    c.post(f"/v1/runs/{blocker['id']}/cancel")
    assert wait_run(c, blocker["id"])["state"] == "cancelled"
    for rid in accepted:
        assert wait_run(c, rid, timeout=90)["state"] in FINAL_RUN_STATES
    assert [wait_run(c, rid)["state"] for rid in accepted[1:]] == ["succeeded"] * 5


def test_retry_is_refused_at_the_queue_quota(small_queue_server):
    c = small_queue_server
    finished = submit_run(c, cmd=["sh", "-c", "exit 3"])
    wait_run(c, finished["id"], timeout=60)
    blocker = submit_run(c, cmd=["sleep", "25"])
    wait_run(c, blocker["id"], until={"running"}, timeout=30)
    queued = [submit_run(c, cmd=["true"])["id"] for _ in range(5)]
    assert_problem(c.post("/v1/runs", json={"cmd": ["true"]}), 429, "quota_exceeded")
    r = c.post(f"/v1/runs/{finished['id']}/retry")
    try:
        assert_problem(r, 429, "quota_exceeded")
        assert c.get(f"/v1/runs/{finished['id']}").json()["state"] == "failed"
    finally:
        c.post(f"/v1/runs/{blocker['id']}/cancel")
        for rid in queued + [finished["id"]]:
            wait_run(c, rid, timeout=90)
