"""Auth, tenant isolation and the problem+json shape of errors."""
import httpx
import pytest

from conftest import TIMEOUT, URL, assert_problem, create_sandbox


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                                     {"Authorization": "Bearer"}, {"Authorization": "bearer wrong-key"}])
def test_no_or_wrong_key_is_401(headers):
    with httpx.Client(base_url=URL, timeout=TIMEOUT, headers=headers) as c:
        for method, path in [("GET", "/v1/sandboxes"), ("POST", "/v1/sandboxes"), ("GET", "/v1/sandboxes/sbx-x"),
                             ("POST", "/v1/sandboxes/sbx-x/exec"), ("DELETE", "/v1/sandboxes/sbx-x")]:
            r = c.request(method, path, json={} if method == "POST" else None)
            body = assert_problem(r, 401, "unauthorized")
            assert "www-authenticate" in {k.lower() for k in r.headers} or body


@pytest.fixture(scope="module")
def a_sandbox(client):
    from conftest import require_root
    require_root()
    sb = create_sandbox(client)
    r = client.put(f"/v1/sandboxes/{sb['id']}/files", params={"path": "/workspace/secret.txt"}, content=b"tenant A only")
    assert r.status_code == 201
    r = client.post(f"/v1/sandboxes/{sb['id']}/processes", json={"cmd": ["sleep", "300"]})
    assert r.status_code == 201
    sb["_pid"] = r.json()["pid"]
    yield sb
    client.delete(f"/v1/sandboxes/{sb['id']}")


def test_tenant_b_gets_404_everywhere(client, client_b, a_sandbox):
    sid, pid = a_sandbox["id"], a_sandbox["_pid"]
    base = f"/v1/sandboxes/{sid}"
    calls = [
        ("GET", base, {}),
        ("POST", f"{base}/timeout", {"json": {"ttl": "1m"}}),
        ("POST", f"{base}/exec", {"json": {"cmd": ["cat", "/workspace/secret.txt"]}}),
        ("POST", f"{base}/exec", {"json": {"cmd": ["true"]}, "headers": {"Accept": "text/event-stream"}}),
        ("GET", f"{base}/exec/ws", {}),
        ("GET", f"{base}/files", {"params": {"path": "/workspace/secret.txt"}}),
        ("PUT", f"{base}/files", {"params": {"path": "/workspace/secret.txt"}, "content": b"overwritten by B"}),
        ("DELETE", f"{base}/files", {"params": {"path": "/workspace/secret.txt"}}),
        ("GET", f"{base}/files/list", {"params": {"path": "/workspace"}}),
        ("POST", f"{base}/files/mkdir", {"json": {"path": "/workspace/b"}}),
        ("POST", f"{base}/files/move", {"json": {"from": "/workspace/secret.txt", "to": "/workspace/b.txt"}}),
        ("POST", f"{base}/processes", {"json": {"cmd": ["true"]}}),
        ("GET", f"{base}/processes", {}),
        ("GET", f"{base}/processes/{pid}/output", {}),
        ("POST", f"{base}/processes/{pid}/input", {"json": {"data": "x"}}),
        ("POST", f"{base}/processes/{pid}/close-stdin", {}),
        ("POST", f"{base}/processes/{pid}/signal", {"json": {"signal": "KILL"}}),
        ("POST", f"{base}/processes/{pid}/resize", {"json": {"cols": 10, "rows": 10}}),
        ("DELETE", base, {}),
    ]
    for method, path, kw in calls:
        r = client_b.request(method, path, **kw)
        body = assert_problem(r, 404, "not_found")
        assert "tenant" not in body["detail"].lower() or sid not in body["detail"], body
    # B's listing does not show it
    assert sid not in [sb["id"] for sb in client_b.get("/v1/sandboxes").json()["items"]]
    # and A's sandbox is untouched
    assert client.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"
    assert client.get(f"/v1/sandboxes/{sid}/files", params={"path": "/workspace/secret.txt"}).content == b"tenant A only"
    procs = client.get(f"/v1/sandboxes/{sid}/processes").json()["items"]
    assert next(p for p in procs if p["pid"] == pid)["running"] is True


def test_bad_json(client):
    for body in [b"{not json", b"[1,2]", b'"text"', b'{"ttl": }']:
        p = assert_problem(client.post("/v1/sandboxes", content=body, headers={"Content-Type": "application/json"}), 400, "invalid_request")
        assert "JSON" in p["detail"], p


def test_unknown_field_is_named(client):
    p = assert_problem(client.post("/v1/sandboxes", json={"profile": "default", "colour": "red"}), 400, "invalid_request")
    assert p.get("field") == "colour", p
    assert "colour" in p["detail"]


def test_wrong_type_is_named(client):
    p = assert_problem(client.post("/v1/sandboxes", json={"metadata": {"a": 1}}), 400, "invalid_request")
    assert p.get("field") == "metadata.a", p
    p = assert_problem(client.post("/v1/sandboxes", json={"ttl": "forever"}), 400, "invalid_request")
    assert p.get("field") == "ttl", p
    p = assert_problem(client.post("/v1/sandboxes", json={"isolation": "teleport"}), 400, "invalid_request")
    assert "container" in p["detail"], p


def test_unknown_profile_lists_known(client):
    r = client.post("/v1/sandboxes", json={"profile": "no-such-profile"})
    assert r.status_code in (400, 404), r.text
    p = assert_problem(r, r.status_code)
    assert "no-such-profile" in p["detail"], p
    assert "default" in p["detail"] and "bounty" in p["detail"], p


def test_oversized_body(client):
    big = b'{"metadata":{"k":"' + b"x" * (9 << 20) + b'"}}'
    p = assert_problem(client.post("/v1/sandboxes", content=big), 413, "limit_exceeded")
    assert p["name"] == "max_json_body_bytes", p
    assert p["limit"] == 8 << 20 and p["actual"] >= len(big) - 1, p


def test_unknown_route_is_problem(client):
    assert_problem(client.get("/v1/nothing-here"), 404, "not_found")
