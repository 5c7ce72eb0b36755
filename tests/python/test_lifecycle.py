"""Sandbox lifecycle: create (curl -d style), get, list (paging, filters), timeout, delete."""
import time
import uuid

import pytest
from datetime import datetime, timezone

from conftest import assert_problem, create_sandbox, processes_mentioning, require_root

SANDBOX_KEYS = {"id", "state", "profile", "isolation", "created_at", "updated_at", "last_activity_at", "metadata", "usage", "limits"}


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_create_like_curl_d_get_timeout_delete(client):
    require_root()
    # curl -H "Authorization: Bearer $KEY" -d '{"profile":"default","ttl":"10m"}' /v1/sandboxes
    r = client.post("/v1/sandboxes", content=b'{"profile":"default","ttl":"10m"}',
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/json")
    sb = r.json()
    sid = sb["id"]
    try:
        assert sid.startswith("sbx-"), sb
        assert sb["state"] == "running", sb
        assert SANDBOX_KEYS <= sb.keys(), SANDBOX_KEYS - sb.keys()
        assert sb["profile"] == "default"
        # ttl 10m: expires about 10 minutes after creation
        ttl = (parse_time(sb["expires_at"]) - parse_time(sb["created_at"])).total_seconds()
        assert 590 <= ttl <= 610, sb

        got = client.get(f"/v1/sandboxes/{sid}")
        assert got.status_code == 200, got.text
        assert got.json()["id"] == sid and got.json()["state"] == "running"

        r = client.post(f"/v1/sandboxes/{sid}/timeout", json={"ttl": "1h"})
        assert r.status_code == 200, r.text
        left = (parse_time(r.json()["expires_at"]) - datetime.now(timezone.utc)).total_seconds()
        assert 3500 <= left <= 3610, r.json()
        # a number of seconds is a duration too
        r = client.post(f"/v1/sandboxes/{sid}/timeout", json={"ttl": 120})
        assert r.status_code == 200, r.text
        left = (parse_time(r.json()["expires_at"]) - datetime.now(timezone.utc)).total_seconds()
        assert 100 <= left <= 130, r.json()
        assert_problem(client.post(f"/v1/sandboxes/{sid}/timeout", json={}), 400, "invalid_request")
        assert_problem(client.post(f"/v1/sandboxes/{sid}/timeout", json={"ttl": "soon"}), 400, "invalid_request")
    finally:
        d = client.delete(f"/v1/sandboxes/{sid}")
    assert d.status_code == 200, d.text
    assert d.json()["state"] == "destroyed", d.json()
    after = client.get(f"/v1/sandboxes/{sid}")
    assert after.status_code == 200, after.text
    assert after.json()["state"] == "destroyed"
    # a destroyed sandbox runs nothing
    r = client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["true"]})
    assert r.status_code in (404, 409, 410), (r.status_code, r.text)
    assert_problem(r, r.status_code)


def test_delete_without_waiting_answers_202_stopping_then_the_server_finishes(client):
    require_root()
    sid = create_sandbox(client)["id"]
    # a background process the teardown has to kill
    r = client.post(f"/v1/sandboxes/{sid}/processes", json={"cmd": ["sleep", "986735"]})
    assert r.status_code in (200, 201), r.text
    assert_problem(client.delete(f"/v1/sandboxes/{sid}?wait=soon"), 400, "invalid_request")
    d = client.delete(f"/v1/sandboxes/{sid}?wait=false")
    assert d.status_code == 202, d.text
    assert d.json()["id"] == sid and d.json()["state"] == "stopping", d.json()
    # it takes no more work, whether its teardown is under way or over
    r = client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["true"]})
    assert r.status_code in (404, 409, 410), (r.status_code, r.text)
    # a delete that waits answers when the teardown is over, with the final record
    d = client.delete(f"/v1/sandboxes/{sid}")
    assert d.status_code == 200, d.text
    assert d.json()["state"] == "destroyed", d.json()
    assert client.get(f"/v1/sandboxes/{sid}").json()["state"] == "destroyed"
    assert not processes_mentioning(["986735"])
    # deleting an ended sandbox without waiting returns its final record
    again = client.delete(f"/v1/sandboxes/{sid}?wait=false")
    assert again.status_code == 200 and again.json()["state"] == "destroyed", again.text


def test_get_unknown_is_404(client):
    assert_problem(client.get("/v1/sandboxes/sbx-doesnotexist"), 404, "not_found")
    assert_problem(client.delete("/v1/sandboxes/sbx-doesnotexist"), 404, "not_found")


def test_list_paging_and_filters(client):
    require_root()
    tag = uuid.uuid4().hex[:10]
    ids = []
    try:
        for i in range(3):
            ids.append(create_sandbox(client, metadata={"run": tag, "n": str(i)})["id"])
        # metadata filter + paging (newest first)
        seen = []
        cursor = None
        pages = 0
        while True:
            params = {"metadata.run": tag, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            r = client.get("/v1/sandboxes", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert len(body["items"]) <= 2
            seen += [sb["id"] for sb in body["items"]]
            pages += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
            assert pages < 5, "paging does not end"
        assert pages == 2, pages
        assert sorted(seen) == sorted(ids), (seen, ids)

        # two metadata pairs must both match
        r = client.get("/v1/sandboxes", params={"metadata.run": tag, "metadata.n": "1"})
        assert [sb["id"] for sb in r.json()["items"]] == [ids[1]]
        r = client.get("/v1/sandboxes", params={"metadata.run": "no-such-" + tag})
        assert r.json()["items"] == []

        # state filter
        assert client.delete(f"/v1/sandboxes/{ids[0]}").status_code == 200
        r = client.get("/v1/sandboxes", params={"metadata.run": tag, "state": "running"})
        assert sorted(sb["id"] for sb in r.json()["items"]) == sorted(ids[1:])
        r = client.get("/v1/sandboxes", params={"metadata.run": tag, "state": "destroyed"})
        assert [sb["id"] for sb in r.json()["items"]] == [ids[0]]
        r = client.get("/v1/sandboxes", params={"metadata.run": tag, "state": "running,destroyed"})
        assert len(r.json()["items"]) == 3

        body = assert_problem(client.get("/v1/sandboxes", params={"state": "sleeping"}), 400, "invalid_request")
        assert "running" in body["detail"]
        assert_problem(client.get("/v1/sandboxes", params={"limit": 0}), 400, "invalid_request")
        assert_problem(client.get("/v1/sandboxes", params={"colour": "red"}), 400, "invalid_request")
    finally:
        for sid in ids:
            client.delete(f"/v1/sandboxes/{sid}")


def test_create_with_env_and_metadata(client):
    require_root()
    sb = create_sandbox(client, env={"GREETING": "hello"}, metadata={"owner": "pytest"})
    try:
        assert sb["metadata"] == {"owner": "pytest"}
        r = client.post(f"/v1/sandboxes/{sb['id']}/exec", json={"cmd": ["sh", "-c", "echo $GREETING"]})
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == "hello\n"
        assert client.get(f"/v1/sandboxes/{sb['id']}").json()["usage"]["exec_count"] >= 1
    finally:
        client.delete(f"/v1/sandboxes/{sb['id']}")


def test_health_and_metrics(client, anon):
    assert anon.get("/healthz").status_code == 200
    assert anon.get("/readyz").status_code == 200
    assert_problem(anon.get("/metrics"), 401, "unauthorized")
    m = client.get("/metrics")
    assert m.status_code == 200
    assert "sandboxer_sandboxes" in m.text


def test_list_is_oldest_first(client):
    require_root()
    tag = uuid.uuid4().hex[:10]
    ids = []
    try:
        for i in range(2):
            ids.append(create_sandbox(client, metadata={"order": tag})["id"])
            if i == 0:
                time.sleep(1.1)  # created_at has second resolution
        r = client.get("/v1/sandboxes", params={"metadata.order": tag})
        assert [sb["id"] for sb in r.json()["items"]] == ids
    finally:
        for sid in ids:
            client.delete(f"/v1/sandboxes/{sid}")
