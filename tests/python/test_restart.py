"""kill -9 and SIGTERM of `sandboxer serve`: sandboxes survive and are adopted (or marked lost).

Runs its own server on its own data directory (the suite's server is left alone).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import httpx
import pytest

from conftest import Server, assert_problem, drop_server, own_server, processes_mentioning, require_root

BIN = os.environ.get("SANDBOXER_BIN", "")


LOST_EXEC = {}


@pytest.fixture
def env():
    require_root()
    if not BIN or not os.path.exists(BIN):
        pytest.skip("SANDBOXER_BIN is not set")
    tmp = tempfile.mkdtemp(prefix="sandboxer-restart-")
    os.chmod(tmp, 0o755)  # see test_serve_creates_data_dir_that_works
    data = os.path.join(tmp, "data")
    os.makedirs(data, mode=0o755)
    os.chmod(data, 0o755)
    key = subprocess.run([BIN, "key", "create", "--tenant", "t", "--data", data], check=True,
                         capture_output=True, text=True).stdout.strip()
    assert key
    server = Server(data)
    server.start()
    state = {"server": server, "key": key, "data": data, "ids": []}
    yield state
    # leave nothing behind, even when the test failed half-way
    server = state["server"]
    try:
        alive = server.proc.poll() is None
        if alive:
            try:
                alive = httpx.get(server.url + "/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                alive = False
        if not alive:
            if server.proc.poll() is None:
                server.kill9()
            server.start()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            for sid in state["ids"]:
                c.delete(f"/v1/sandboxes/{sid}")
    finally:
        server.stop()
        server.log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def client_for(state):
    return httpx.Client(base_url=state["server"].url, headers={"Authorization": f"Bearer {state['key']}"},
                        timeout=httpx.Timeout(60, connect=10))


def sandboxes_dirs(state):
    import glob
    return glob.glob(os.path.join(state["data"] + ".state", "servers", "*", "sandboxes")) + \
        glob.glob(os.path.join(state["data"], "state", "sandboxes"))


def sandbox_dir(state, sid):
    for d in sandboxes_dirs(state):
        if os.path.isdir(os.path.join(d, sid)):
            return os.path.join(d, sid)
    return os.path.join(state["data"] + ".state", "servers", "?", "sandboxes", sid)


def agent_pid(state, sid):
    path = os.path.join(sandbox_dir(state, sid), "init.pid")
    with open(path) as f:
        return int(f.read().split()[0])


def test_kill9_restart_adopts_and_marks_lost(env):
    c = client_for(env)
    one = c.post("/v1/sandboxes", json={"ttl": "10m"})
    two = c.post("/v1/sandboxes", json={"ttl": "10m"})
    assert one.status_code == 201 and two.status_code == 201, (one.text, two.text)
    s1, s2 = one.json()["id"], two.json()["id"]
    env["ids"] += [s1, s2]
    r = c.put(f"/v1/sandboxes/{s1}/files", params={"path": "/workspace/keep.txt"}, content=b"survives kill -9")
    assert r.status_code == 201, r.text
    assert os.path.isdir(sandbox_dir(env, s1)) and os.path.isdir(sandbox_dir(env, s2))
    agent2 = agent_pid(env, s2)
    os.kill(agent2, 0)

    # a long exec in flight when the server dies
    outcome = {}

    def long_exec():
        try:
            with client_for(env) as c2:
                outcome["response"] = c2.post(f"/v1/sandboxes/{s1}/exec", json={"cmd": ["sleep", "30"]})
        except Exception as e:  # noqa: BLE001 - the error is the point
            outcome["error"] = e

    t = threading.Thread(target=long_exec)
    t.start()
    deadline = time.time() + 20
    while time.time() < deadline:
        items = c.get(f"/v1/sandboxes/{s1}/processes").json().get("items", [])
        if any(p["argv"][:2] == ["sleep", "30"] and p["running"] for p in items):
            break
        time.sleep(0.1)
    else:
        time.sleep(1)

    env["server"].kill9()
    t.join(15)
    assert not t.is_alive(), "the interrupted exec request still hangs after kill -9"
    assert "error" in outcome, f"the exec got an answer from a killed server: {outcome.get('response')}"
    assert isinstance(outcome["error"], (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)), repr(outcome["error"])

    # the second sandbox's agent dies while no server is watching
    os.kill(agent2, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{agent2}") and "Z" not in open(f"/proc/{agent2}/stat").read().split()[2]:
        time.sleep(0.1)

    env["server"].start()
    c.close()
    c = client_for(env)
    r1 = c.get(f"/v1/sandboxes/{s1}")
    assert r1.status_code == 200, r1.text
    assert r1.json()["state"] == "running", r1.json()
    g = c.get(f"/v1/sandboxes/{s1}/files", params={"path": "/workspace/keep.txt"})
    assert g.status_code == 200 and g.content == b"survives kill -9", (g.status_code, g.text)
    ex = c.post(f"/v1/sandboxes/{s1}/exec", json={"cmd": ["cat", "/workspace/keep.txt"]})
    assert ex.status_code == 200 and ex.json()["stdout"] == "survives kill -9", ex.text

    r2 = c.get(f"/v1/sandboxes/{s2}")
    assert r2.status_code == 200, r2.text
    assert r2.json()["state"] == "lost", r2.json()
    assert r2.json().get("reason"), r2.json()
    r = c.post(f"/v1/sandboxes/{s2}/exec", json={"cmd": ["true"]})
    assert r.status_code in (404, 409, 410), (r.status_code, r.text)
    assert_problem(r, r.status_code)
    LOST_EXEC["status"] = r.status_code
    listed = {sb["id"]: sb["state"] for sb in c.get("/v1/sandboxes").json()["items"]}
    assert listed == {s1: "running", s2: "lost"}, listed

    # delete all: nothing left on the host
    d = c.delete(f"/v1/sandboxes/{s1}")
    assert d.status_code == 200 and d.json()["state"] == "destroyed", d.text
    d = c.delete(f"/v1/sandboxes/{s2}")
    assert d.status_code in (200, 409), d.text
    dirs = sandboxes_dirs(env)
    assert dirs, "no sandboxes directory found"

    def left():
        return [e for d in dirs if os.path.isdir(d) for e in os.listdir(d)]
    deadline = time.time() + 10
    while time.time() < deadline and left():
        time.sleep(0.2)
    assert left() == [], left()
    assert processes_mentioning([s1, s2]) == []
    c.close()


def test_exec_on_lost_sandbox_is_410():
    if "status" not in LOST_EXEC:
        pytest.skip("needs test_kill9_restart_adopts_and_marks_lost to get that far")
    assert LOST_EXEC["status"] == 410


def test_sigterm_exits_zero_and_next_start_adopts(env):
    c = client_for(env)
    r = c.post("/v1/sandboxes", json={"ttl": "10m"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    env["ids"].append(sid)
    assert c.put(f"/v1/sandboxes/{sid}/files", params={"path": "/workspace/a.txt"}, content=b"graceful").status_code == 201
    agent = agent_pid(env, sid)
    c.close()

    server = env["server"]
    t0 = time.time()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(8)
    except subprocess.TimeoutExpired:
        pytest.fail("the server did not exit within 8 s of SIGTERM; log: " + server.log_text())
    assert code == 0, f"exit status {code}; log: {server.log_text()}"
    assert time.time() - t0 < 8
    # the sandbox outlives the server
    os.kill(agent, 0)
    assert os.path.isdir(sandbox_dir(env, sid))

    server.start()
    c = client_for(env)
    got = c.get(f"/v1/sandboxes/{sid}")
    assert got.status_code == 200 and got.json()["state"] == "running", got.text
    ex = c.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["cat", "/workspace/a.txt"]})
    assert ex.status_code == 200 and ex.json()["stdout"] == "graceful", ex.text
    assert agent_pid(env, sid) == agent, "the sandbox was re-created, not adopted"
    d = c.delete(f"/v1/sandboxes/{sid}")
    assert d.status_code == 200, d.text
    assert not os.path.exists(sandbox_dir(env, sid))
    assert processes_mentioning([sid]) == []
    c.close()


def test_serve_creates_data_dir_that_works():
    """A fresh install: `serve --data DIR` on a directory that does not exist yet (as /var/lib/sandboxer)."""
    require_root()
    if not BIN or not os.path.exists(BIN):
        pytest.skip("SANDBOXER_BIN is not set")
    tmp = tempfile.mkdtemp(prefix="sandboxer-fresh-")
    os.chmod(tmp, 0o755)
    data = os.path.join(tmp, "data")
    os.makedirs(data, mode=0o700)  # what `serve` does when the directory is missing
    os.chmod(data, 0o700)
    key = subprocess.run([BIN, "key", "create", "--tenant", "t", "--data", data], check=True,
                         capture_output=True, text=True).stdout.strip()
    server = Server(data)
    server.start()
    try:
        with client_for({"server": server, "key": key}) as c:
            r = c.post("/v1/sandboxes", json={"ttl": "1m"})
            if r.status_code == 201:
                c.delete(f"/v1/sandboxes/{r.json()['id']}")
            assert r.status_code == 201, r.text
    finally:
        server.stop()
        server.log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_huge_duration_does_not_crash_the_server(env):
    c = client_for(env)
    r = c.post("/v1/sandboxes", json={"ttl": "10m"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    env["ids"].append(sid)
    try:
        r = c.post(f"/v1/sandboxes/{sid}/timeout", json={"ttl": 8.674482569925529e+307})
        assert r.status_code == 400, r.text
        assert_problem(r, 400, "invalid_request")
        r = c.post("/v1/sandboxes", json={"ttl": 1e300})
        assert r.status_code == 400, r.text
    except httpx.TransportError as e:
        pytest.fail(f"the server went away: {e!r}")
    finally:
        c.close()
    assert env["server"].proc.poll() is None, "the server crashed"


def test_a_sandbox_ends_itself_at_its_ttl_when_its_server_is_gone():
    # The server is killed and never comes back: the sandbox must not run on past TTL + grace.
    server, key = own_server("sandboxer-ttl-", "t", args=["--ttl-grace", "2s"])
    data = server.data
    marker = f"sleep {700000 + os.getpid() % 1000}"
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            r = c.post("/v1/sandboxes", json={"ttl": "4s"})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            r = c.post(f"/v1/sandboxes/{sid}/processes", json={"cmd": ["sh", "-c", marker]})
            assert r.status_code in (200, 201), r.text
        assert processes_mentioning([marker]), "the background process runs"
        server.kill9()
        # No server renews it: at TTL (4 s) + grace (2 s) the agent ends the sandbox.
        deadline = time.time() + 60
        while processes_mentioning([marker]) and time.time() < deadline:
            time.sleep(0.5)
        assert processes_mentioning([marker]) == [], "the sandbox outlived its TTL with its server gone"
        # The next start collects what is left and records why.
        server.start()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            got = c.get(f"/v1/sandboxes/{sid}").json()
            assert got["state"] in ("lost", "destroyed"), got
        import glob
        assert not glob.glob(os.path.join(data + ".state", "servers", "*", "sandboxes", sid))
    finally:
        drop_server(server)
