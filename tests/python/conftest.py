"""Fixtures for the HTTP API suite: drives a live `sandboxer serve` as an agent framework would.

Environment (set by scripts/api-tests.sh): SANDBOXER_URL, SANDBOXER_API_KEY, SANDBOXER_API_KEY_B,
SANDBOXER_BIN, SANDBOXER_DATA.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import httpx
import pytest

URL = os.environ.get("SANDBOXER_URL", "http://127.0.0.1:7070")
KEY_A = os.environ.get("SANDBOXER_API_KEY", "")
KEY_B = os.environ.get("SANDBOXER_API_KEY_B", "")
BIN = os.environ.get("SANDBOXER_BIN", "")
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def require_root():
    """Skips the calling test (with the reason printed) unless running as root; under `make test`
    (SANDBOXER_REQUIRE_FIXTURES=1), which runs as root, fails it instead."""
    if os.geteuid() != 0:
        if os.environ.get("SANDBOXER_REQUIRE_FIXTURES") == "1":
            pytest.fail("needs root (the container backend); under make test a missing requirement is a failure")
        print("skipping: the container backend needs root")
        pytest.skip("needs root (the container backend)")


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


FINAL_RUN_STATES = {"succeeded", "failed", "timed_out", "cancelled", "dead"}


def submit_run(client, **body):
    """POST /v1/runs → 202; the run."""
    r = client.post("/v1/runs", json=body)
    assert r.status_code == 202, (r.status_code, r.text)
    return r.json()


def wait_state(client, path, until, timeout, every=0.2):
    """Polls GET `path` until its JSON `state` is in `until` (a bound against hangs, not a speed check)."""
    deadline = time.time() + timeout
    while True:
        r = client.get(path)
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        if body["state"] in until:
            return body
        assert time.time() < deadline, f"{path} still {body['state']} after {timeout} s: {body}"
        time.sleep(every)


def wait_run(client, rid, until=FINAL_RUN_STATES, timeout=60):
    """Polls GET /v1/runs/{rid} until its state is in `until`."""
    return wait_state(client, f"/v1/runs/{rid}", until, timeout)


def processes_mentioning(needles):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmd for n in needles):
            found.append((int(pid), cmd))
    return found


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A `sandboxer serve` of a test's own on data directory `data` (host state in `data`.state),
    with extra serve flags `args`; the suite's server is left alone."""

    def __init__(self, data, args=()):
        self.data = data
        self.args = list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        # host-side state: $SANDBOXER_STATE_DIR/servers/<hash of data> (older builds: <data>/state)
        self.state_root = data.rstrip("/") + ".state"
        os.makedirs(self.state_root, mode=0o755, exist_ok=True)
        self.log = open(os.path.join(data, "..", os.path.basename(data) + ".log"), "ab")

    def start(self, preexec_fn=None):
        """Starts the server and waits for /readyz; `preexec_fn` runs in the server process before exec."""
        self.proc = subprocess.Popen([BIN, "serve", "--port", str(self.port), "--data", self.data, *self.args],
                                     stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn,
                                     env={**os.environ, "SANDBOXER_STATE_DIR": self.state_root})
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, f"server exited with {self.proc.returncode}; log: {self.log_text()}"
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready in 60 s; log: " + self.log_text())

    def log_text(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def own_server(prefix, tenant, args=(), preexec_fn=None):
    """A started `Server` of a test's own on a fresh data directory, and an API key of `tenant`
    there; `drop_server` stops it and removes its directories. `preexec_fn` runs in the server
    process before exec."""
    require_root()
    if not BIN or not os.path.exists(BIN):
        pytest.skip("SANDBOXER_BIN is not set")
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    data = os.path.join(tmp, "data")
    os.makedirs(data, mode=0o755)
    key = subprocess.run([BIN, "key", "create", "--tenant", tenant, "--data", data], check=True,
                         capture_output=True, text=True).stdout.strip()
    assert key
    server = Server(data, args=args)
    server.tmp = tmp
    server.key = key
    server.start(preexec_fn=preexec_fn)
    return server, key


def drop_server(server):
    # Sandboxes outlive a server stop by design: delete what the tenant left running first.
    key = getattr(server, "key", None)
    if key and server.proc and server.proc.poll() is None:
        try:
            with httpx.Client(base_url=server.url, headers=auth(key), timeout=60) as c:
                r = c.get("/v1/sandboxes", params={"state": "running", "limit": 100})
                for sb in (r.json().get("items", []) if r.status_code == 200 else []):
                    c.delete(f"/v1/sandboxes/{sb['id']}")
        except httpx.HTTPError:
            pass
    server.stop()
    server.log.close()
    shutil.rmtree(server.tmp, ignore_errors=True)
    shutil.rmtree(server.state_root, ignore_errors=True)
