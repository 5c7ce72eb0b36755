"""Fixtures for the HTTP API suite: drives a live `sandboxer serve` as an agent framework would.

Environment (set by scripts/api-tests.sh): SANDBOXER_URL, SANDBOXER_API_KEY, SANDBOXER_API_KEY_B,
SANDBOXER_BIN, SANDBOXER_DATA.
"""
import os

import httpx
import pytest

URL = os.environ.get("SANDBOXER_URL", "http://127.0.0.1:7070")
KEY_A = os.environ.get("SANDBOXER_API_KEY", "")
KEY_B = os.environ.get("SANDBOXER_API_KEY_B", "")
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def require_root():
    """Skips the calling test (with the reason printed) unless running as root."""
    if os.geteuid() != 0:
        print("skipping: the container lane needs root")
        pytest.skip("needs root (the container lane)")


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def assert_problem(r, status, code=None):
    """An RFC 9457 problem: problem+json with type, title, status, detail, code."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers.get("content-type")
    body = r.json()
    for k in ("type", "title", "status", "detail", "code"):
        assert k in body, (k, body)
    assert body["status"] == status, body
    assert isinstance(body["detail"], str) and body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def sse_events(response):
    """Parses a server-sent-events response into [(event, data)] as it streams."""
    import json
    event, data = None, []
    for line in response.iter_lines():
        if line == "":
            if event is not None or data:
                yield event, json.loads("\n".join(data)) if data else None
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if event is not None or data:
        yield event, json.loads("\n".join(data)) if data else None


@pytest.fixture(scope="session")
def base_url():
    return URL


@pytest.fixture(scope="session")
def client():
    if not KEY_A:
        pytest.skip("SANDBOXER_API_KEY is not set (run scripts/api-tests.sh)")
    with httpx.Client(base_url=URL, headers=auth(KEY_A), timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="session")
def client_b():
    if not KEY_B:
        pytest.skip("SANDBOXER_API_KEY_B is not set (run scripts/api-tests.sh)")
    with httpx.Client(base_url=URL, headers=auth(KEY_B), timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="session")
def anon():
    with httpx.Client(base_url=URL, timeout=TIMEOUT) as c:
        yield c


def create_sandbox(client, **body):
    body.setdefault("ttl", "10m")
    r = client.post("/v1/sandboxes", json=body)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()


@pytest.fixture
def sandbox(client):
    """A fresh running sandbox of tenant A, deleted afterwards."""
    require_root()
    sb = create_sandbox(client)
    yield sb
    client.delete(f"/v1/sandboxes/{sb['id']}")


@pytest.fixture(scope="module")
def shared_sandbox(client):
    """One sandbox for a whole module of read-mostly tests (creating one costs time)."""
    require_root()
    sb = create_sandbox(client, metadata={"suite": "api-tests"})
    yield sb
    client.delete(f"/v1/sandboxes/{sb['id']}")


def exec_(client, sid, **body):
    r = client.post(f"/v1/sandboxes/{sid}/exec", json=body)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()
