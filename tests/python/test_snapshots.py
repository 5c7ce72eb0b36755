"""Snapshot, restore and fork as an agent framework drives them (issue 19): a snapshot of a
sandbox's workspace restores exactly, a fork makes independent sandboxes, snapshots are the
tenant's own, and bad input is a problem naming the cause with nothing made.
"""
from conftest import assert_problem, create_sandbox, exec_, require_root


def sh(client, sid, script):
    r = exec_(client, sid, cmd=["sh", "-c", script])
    assert r["exit_code"] == 0, r
    return r["stdout"]


def test_snapshot_restore_fork_and_bad_input(client, client_b):
    require_root()
    source = create_sandbox(client)["id"]
    made = []
    try:
        sh(client, source, "cd /workspace && echo hi > a && chmod 640 a && ln -s a l && truncate -s 50M sparse")
        listing = "cd /workspace && ls -ln --time-style=+ . | sed 1d && du -k sparse | cut -f1"
        before = sh(client, source, listing)
        r = client.post(f"/v1/sandboxes/{source}/snapshots")
        assert r.status_code == 201, r.text
        shot = r.json()
        assert set(shot) == {"id", "digest", "size_bytes", "paused_ms"} and shot["id"].startswith("snap-"), shot
        assert shot["size_bytes"] < 1 << 20, "holes are not stored"

        restored = create_sandbox(client, snapshot=shot["id"])["id"]
        made.append(restored)
        assert sh(client, restored, listing) == before

        r = client.post(f"/v1/sandboxes/{source}/fork", json={"count": 2})
        assert r.status_code == 201, r.text
        fork = r.json()
        ids = [s["id"] for s in fork["sandboxes"]]
        made += ids
        assert len(ids) == 2 and all(s["state"] == "running" for s in fork["sandboxes"])
        sh(client, ids[0], "echo mine > /workspace/only")
        assert sh(client, ids[1], "ls /workspace/only 2>/dev/null || echo absent") == "absent\n"

        assert [s["id"] for s in client.get("/v1/snapshots").json()["snapshots"]] == [shot["id"], fork["snapshot"]]
        assert_problem(client_b.get(f"/v1/snapshots/{shot['id']}"), 404, "not_found")
        assert_problem(client_b.post("/v1/sandboxes", json={"snapshot": shot["id"]}), 404, "not_found")
        assert_problem(client_b.post(f"/v1/sandboxes/{source}/snapshots"), 404, "not_found")
        for count in (0, 1000):
            body = assert_problem(client.post(f"/v1/sandboxes/{source}/fork", json={"count": count}), 400, "invalid_request")
            assert "count" in body["detail"] and "100" in body["detail"], body
        body = assert_problem(client.post(f"/v1/sandboxes/{source}/snapshots", json={"memory": True}), 409, "invalid_state")
        assert "criu" in body["detail"], body
    finally:
        for sid in [source] + made:
            client.delete(f"/v1/sandboxes/{sid}")
    for sid in (shot["id"], fork["snapshot"]):
        assert client.delete(f"/v1/snapshots/{sid}").status_code == 204
    assert_problem(client.post("/v1/sandboxes", json={"snapshot": shot["id"]}), 404, "not_found")
