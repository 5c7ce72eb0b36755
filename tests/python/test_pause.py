"""Pause, resume, hibernate (issue 19): the states, idempotent 200s, auto-resume, the trail."""
import json

from conftest import assert_problem, exec_


def audit(client, sid):
    r = client.get(f"/v1/sandboxes/{sid}/audit")
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def test_pause_resume_hibernate(client, client_b, sandbox):
    sid = sandbox["id"]
    exec_(client, sid, cmd=["sh", "-c", "echo kept > /workspace/k.txt"])
    for _ in range(2):
        r = client.post(f"/v1/sandboxes/{sid}/pause")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "paused"
    listed = client.get("/v1/sandboxes", params={"state": "paused"}).json()["items"]
    assert [s["id"] for s in listed] == [sid]
    assert_problem(client_b.post(f"/v1/sandboxes/{sid}/resume"), 404, "not_found")

    # An exec wakes it; the trail says so.
    out = exec_(client, sid, cmd=["cat", "/workspace/k.txt"])
    assert out["stdout"] == "kept\n", out
    assert client.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"
    resumes = [e for e in audit(client, sid) if e["kind"] == "sandbox.resume"]
    assert len(resumes) == 1 and resumes[0]["detail"]["reason"] == "auto", resumes

    r = client.post(f"/v1/sandboxes/{sid}/hibernate")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "hibernated" and r.json()["disk_bytes"] > 0, r.json()
    assert_problem(client.post(f"/v1/sandboxes/{sid}/pause"), 409, "invalid_state")
    r = client.post(f"/v1/sandboxes/{sid}/resume")
    assert r.status_code == 200 and r.json()["state"] == "running", r.text
    assert exec_(client, sid, cmd=["cat", "/workspace/k.txt"])["stdout"] == "kept\n"
    kinds = [e["kind"] for e in audit(client, sid)]
    assert "sandbox.pause" in kinds and "sandbox.hibernate" in kinds, kinds
