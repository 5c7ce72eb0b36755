"""Two `sandboxer serve --store postgres://…` processes on one PostgreSQL are one fleet.

`kill -9` one of them in the middle of runs: their leases expire and the runs finish on the other
node (or end `dead` with every reason when attempts are spent). Needs the private PostgreSQL that
`make test` starts (SANDBOXER_TEST_PG_URL); each test makes its own database.
"""
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import Server, auth, require_root

BIN = os.environ.get("SANDBOXER_BIN", "")
PG_URL = os.environ.get("SANDBOXER_TEST_PG_URL", "")


def require_pg():
    if not PG_URL:
        print("skipping: SANDBOXER_TEST_PG_URL is not set (make test starts a private PostgreSQL)")
        pytest.skip("needs SANDBOXER_TEST_PG_URL")


@pytest.fixture
def database():
    """A fresh database on the private server; its store URL."""
    require_pg()
    name = "fleet_" + uuid.uuid4().hex[:10]
    subprocess.run(["psql", PG_URL, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    parts = urlsplit(PG_URL)
    # postgres:///DB?host=… keeps its empty host (urlunsplit would drop the "//").
    yield f"{parts.scheme}://{parts.netloc}/{name}" + (f"?{parts.query}" if parts.query else "")
    subprocess.run(["psql", PG_URL, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


class Node(Server):
    """One `serve` of the fleet: its own port, data directory and host state, the shared store."""

    def __init__(self, root, name, store):
        os.makedirs(os.path.join(root, name), mode=0o700)
        super().__init__(os.path.join(root, name), ["--store", store, "--workers", "2", "--lease", "2s"])
        self.state = self.state_root
        self.store = store
        self.start()

    def leftovers(self):
        servers = os.path.join(self.state, "servers")
        left = []
        for s in os.listdir(servers) if os.path.isdir(servers) else []:
            d = os.path.join(servers, s, "sandboxes")
            left += [n for n in os.listdir(d) if n.startswith("sbx-")] if os.path.isdir(d) else []
        with open("/proc/mounts") as f:
            left += [line.split()[1] for line in f if self.state in line]
        return left


def fleet_on(store):
    """A generator for fixtures: yields `start(name)`, which starts a node on `store`; stops them all after."""
    require_root()
    root = tempfile.mkdtemp(prefix="sbx-fleet-")
    # The sandboxes' user namespace must traverse the host state below it (mkdtemp makes 0700).
    os.chmod(root, 0o755)
    nodes = []

    def start(name):
        node = Node(root, name, store)
        nodes.append(node)
        return node

    yield start
    for n in nodes:
        n.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fleet(database):
    yield from fleet_on(database)


def key(node):
    return subprocess.run([BIN, "key", "create", "--tenant", "fleet", "--store", node.store, "--data", node.data],
                          check=True, capture_output=True, text=True).stdout.strip()


def wait_final(url, k, rid, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        r = httpx.get(f"{url}/v1/runs/{rid}", headers=auth(k), timeout=30).json()
        if r["state"] not in ("queued", "running"):
            return r
        time.sleep(0.2)
    raise AssertionError(f"run {rid} did not finish: {r}")


def test_runs_of_a_killed_node_finish_on_the_other(fleet):
    a, b = fleet("a"), fleet("b")
    k = key(a)
    # A key made against the shared store works on every node.
    assert httpx.get(f"{b.url}/v1/runs", headers=auth(k), timeout=30).status_code == 200
    ids = []
    for i in range(4):
        r = httpx.post(f"{a.url}/v1/runs", headers=auth(k), json={"cmd": ["sh", "-c", f"sleep 4; echo run{i}"]}, timeout=30)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    # Wait until node a holds at least one of them, then kill it.
    deadline = time.time() + 60
    on_a = []
    while time.time() < deadline and not on_a:
        runs = [httpx.get(f"{b.url}/v1/runs/{i}", headers=auth(k), timeout=30).json() for i in ids]
        on_a = [r["id"] for r in runs if r["state"] == "running" and a.data + "#" in r["attempts"][-1]["worker"]]
        time.sleep(0.1)
    assert on_a, "node a never ran any of the runs"
    a.proc.kill()
    a.proc.wait()
    for rid in ids:
        run = wait_final(b.url, k, rid)
        assert run["state"] == "succeeded", run
        assert run["result"]["stdout"].startswith("run"), run
        if rid in on_a:
            outcomes = [x["outcome"] for x in run["attempts"]]
            assert outcomes[0] == "worker_lost" and outcomes[-1] == "succeeded", run
            assert a.data in run["attempts"][0]["worker"] and b.data in run["attempts"][-1]["worker"], run
    # The killed node's sandboxes died with it (its reaper) and left nothing behind.
    deadline = time.time() + 30
    while time.time() < deadline and a.leftovers():
        time.sleep(0.2)
    assert a.leftovers() == []


def test_a_run_whose_attempts_are_spent_on_dead_nodes_is_dead_with_every_reason(fleet):
    a = fleet("a")
    k = key(a)
    r = httpx.post(f"{a.url}/v1/runs", headers=auth(k), json={"cmd": ["sleep", "30"], "max_attempts": 1}, timeout=30)
    rid = r.json()["id"]
    deadline = time.time() + 60
    while time.time() < deadline and httpx.get(f"{a.url}/v1/runs/{rid}", headers=auth(k), timeout=30).json()["state"] != "running":
        time.sleep(0.1)
    a.proc.kill()
    a.proc.wait()
    b = fleet("b")
    run = wait_final(b.url, k, rid, limit=60)
    assert run["state"] == "dead", run
    assert run["attempts"][0]["outcome"] == "worker_lost", run
    assert "all 1 attempts failed" in run["reason"] and "worker_lost" in run["reason"], run
