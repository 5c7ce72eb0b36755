"""A sandbox's audit trail: GET /v1/sandboxes/{id}/audit as JSON lines, live with follow=1."""
import json
import queue
import threading
import uuid

import httpx

from conftest import KEY_A, TIMEOUT, URL, assert_problem, auth, create_sandbox, exec_, require_root

ENTRY_KEYS = {"seq", "at", "sandbox_id", "kind", "actor", "correlation", "detail"}


def read_trail(client, sid, **params):
    r = client.get(f"/v1/sandboxes/{sid}/audit", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson"), r.headers["content-type"]
    return [json.loads(line) for line in r.text.splitlines() if line]


def test_trail_records_execs_and_files_in_order_and_never_an_env_value(client, client_b):
    require_root()
    sid = create_sandbox(client)["id"]
    secret = f"value-{uuid.uuid4()}"
    res = exec_(client, sid, cmd=["sh", "-c", "test -n \"$API_TOKEN\""], env={"API_TOKEN": secret})
    assert res["outcome"] == "ok", res
    r = client.put(f"/v1/sandboxes/{sid}/files", params={"path": "/workspace/note.txt"}, content=b"hello")
    assert r.status_code == 201, r.text
    assert client.delete(f"/v1/sandboxes/{sid}").status_code == 200

    trail = read_trail(client, sid)
    for e in trail:
        assert ENTRY_KEYS <= e.keys(), e
        assert e["sandbox_id"] == sid
    assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    assert [e["kind"] for e in trail] == ["sandbox.create", "exec.start", "exec.end", "file.write", "sandbox.delete"]
    start, end, write = trail[1], trail[2], trail[3]
    assert start["correlation"].startswith("exec-") and end["correlation"] == start["correlation"]
    assert start["detail"]["env_names"] == "API_TOKEN"
    assert end["detail"]["outcome"] == "ok" and end["detail"]["exit_code"] == 0
    assert isinstance(end["detail"]["duration_ms"], int)
    assert write["detail"]["path"] == "/workspace/note.txt" and write["detail"]["bytes"] == 5
    assert trail[0]["at"].endswith("Z") and "." in trail[0]["at"], trail[0]["at"]
    assert secret not in json.dumps(trail), "an env value reached the audit trail"

    # Paging: after and limit.
    assert [e["seq"] for e in read_trail(client, sid, after=2, limit=2)] == [3, 4]
    assert read_trail(client, sid, after=len(trail)) == []
    assert_problem(client.get(f"/v1/sandboxes/{sid}/audit", params={"limit": 0}), 400, "invalid_request")
    # Another tenant's sandbox does not exist for it.
    assert_problem(client_b.get(f"/v1/sandboxes/{sid}/audit"), 404, "not_found")


def test_follow_streams_new_entries_live_and_ends_with_the_sandbox(client):
    require_root()
    sid = create_sandbox(client)["id"]
    lines = queue.Queue()

    def follow():
        try:
            with httpx.Client(base_url=URL, headers=auth(KEY_A), timeout=TIMEOUT) as c:
                with c.stream("GET", f"/v1/sandboxes/{sid}/audit", params={"follow": 1}) as r:
                    assert r.status_code == 200
                    for line in r.iter_lines():
                        if line:
                            lines.put(json.loads(line))
        finally:
            lines.put(None)

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    try:
        assert lines.get(timeout=30)["kind"] == "sandbox.create"
        res = exec_(client, sid, cmd=["echo", "live"])
        assert res["outcome"] == "ok", res
        start, end = lines.get(timeout=30), lines.get(timeout=30)
        assert (start["kind"], end["kind"]) == ("exec.start", "exec.end")
        assert start["correlation"] == end["correlation"]
        assert start["detail"]["command"] == "echo live"
    finally:
        client.delete(f"/v1/sandboxes/{sid}")
    assert lines.get(timeout=30)["kind"] == "sandbox.delete"
    assert lines.get(timeout=30) is None, "the stream ends once the sandbox has ended"
    t.join(timeout=10)
    assert not t.is_alive()
