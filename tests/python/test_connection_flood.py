"""An unauthenticated connection flood against a server short of descriptors (issue 17, item 1).

The server runs with RLIMIT_NOFILE 256 (soft and hard, so it cannot raise it). Thousands of
half-sent requests from one address must neither take its descriptors nor make its health
checks declare a tenant's live sandbox lost: another client still creates, execs and reads.
"""
import resource
import shutil
import socket
import time

import httpx
import pytest

from conftest import auth, own_server

NOFILE = 256
# The sandboxes' own descriptor limit must fit under the server's hard limit.
SANDBOX = {"ttl": "10m", "profile": {"resources": {"open_files": 128}}}


def limit_nofile():
    """Lowers RLIMIT_NOFILE (soft = hard) in the server process only (a preexec_fn)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def flood(port, count):
    """`count` connections from 127.0.0.1, each with half a request's headers (those the kernel
    refuses once the backlog is full are skipped)."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.bind(("127.0.0.1", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /v1/sandboxes HTTP/1.1\r\nHost: flood\r\nAuthorization: Bearer x")
            socks.append(s)
        except OSError:
            s.close()
    return socks


@pytest.fixture
def limited():
    server, key = own_server("sandboxer-flood-", "t", preexec_fn=limit_nofile)
    # The other client: its own loopback address, so the flood's per-client cap is not its.
    client = httpx.Client(base_url=server.url, headers=auth(key), timeout=60,
                          transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    ids = []
    try:
        yield server, client, ids
    finally:
        for sid in ids:
            try:
                client.delete(f"/v1/sandboxes/{sid}")
            except httpx.HTTPError:
                pass
        client.close()
        server.stop()
        server.log.close()
        shutil.rmtree(server.tmp, ignore_errors=True)
        shutil.rmtree(server.state_root, ignore_errors=True)


def test_a_connection_flood_leaves_live_sandboxes_alone(limited):
    server, client, ids = limited
    r = client.post("/v1/sandboxes", json=SANDBOX)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    ids.append(sid)

    socks = flood(server.port, 3000)
    try:
        # Past at least one health check (every 5 s) with the flood held open and renewed.
        for _ in range(3):
            time.sleep(2.5)
            socks += flood(server.port, 500)
            r = client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["echo", "alive"]})
            assert r.status_code == 200, (r.status_code, r.text)
            assert r.json()["stdout"] == "alive\n"
        r = client.get(f"/v1/sandboxes/{sid}")
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        # The server still has descriptors for new work: a second sandbox is created and answers.
        r = client.post("/v1/sandboxes", json=SANDBOX)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        r = client.post(f"/v1/sandboxes/{ids[-1]}/exec", json={"cmd": ["true"]})
        assert r.status_code == 200, r.text
    finally:
        for s in socks:
            s.close()
    assert server.proc.poll() is None, "the server died under the flood: " + server.log_text()
    assert "sandbox lost" not in server.log_text()
