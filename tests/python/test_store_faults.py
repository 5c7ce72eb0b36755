"""Store faults, tried as an operator would.

A two-node fleet on a PostgreSQL of this test's own (fsync and synchronous_commit on) whose server
is crashed and started again at once (`pg_ctl stop -m immediate` + start) and then stopped for
10 s, with runs in flight and a live sandbox being exec'd into the whole time; and one node on
SQLite whose small filesystem fills up mid-run. While the store is gone, every request that needs
it is answered within its bound with `503 store_unavailable` (SQLite's full disk: `507
insufficient_storage`) and `Retry-After`; exec into the live sandbox keeps working; once the store
is back, every accepted run finishes exactly once and the sandbox's trail has every exec once.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import httpx
import pytest

from conftest import Server, auth, require_root
from test_fleet import fleet_on

BIN = os.environ.get("SANDBOXER_BIN", "")
PG_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "pg-test-server.sh")
# A request that needs the store answers within 2 s while it is gone (the bound); the
# margin covers this client and a loaded 2-core test machine.
BOUND = 2.5


def pg(command, directory):
    return subprocess.run([PG_SCRIPT, command, directory], check=True, capture_output=True, text=True,
                          env={**os.environ, "PG_DURABLE": "1"}).stdout.strip()


@pytest.fixture
def durable_pg():
    require_root()
    if not shutil.which("psql"):
        print("skipping: PostgreSQL is not installed (make test installs it)")
        pytest.skip("needs PostgreSQL")
    directory = tempfile.mkdtemp(prefix="sbxpg.", dir="/tmp")
    url = pg("start", directory)
    yield directory, url
    subprocess.run([PG_SCRIPT, "stop", directory], check=False)


@pytest.fixture
def fleet(durable_pg):
    yield from fleet_on(durable_pg[1])


def timed(method, url, **kw):
    """(response, seconds): the request's answer and how long it took."""
    started = time.monotonic()
    r = httpx.request(method, url, timeout=10, **kw)
    return r, time.monotonic() - started


REFUSALS = []  # seconds each store_unavailable answer took (printed by the fleet test)


def assert_store_unavailable(r, elapsed, what):
    REFUSALS.append(elapsed)
    assert elapsed < BOUND, f"{what} took {elapsed:.2f} s while the store was gone"
    assert r.status_code == 503, f"{what}: {r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["code"] == "store_unavailable", r.text
    assert int(r.headers["retry-after"]) >= 1, r.headers


class Execs:
    """Execs into one live sandbox, one after the other, until stopped; every answer is kept."""

    def __init__(self, url, key, sandbox_id):
        self.url, self.key, self.id = url, key, sandbox_id
        self.results = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        i = 0
        while not self.stopping.is_set():
            i += 1
            try:
                r, took = timed("POST", f"{self.url}/v1/sandboxes/{self.id}/exec", headers=auth(self.key),
                                json={"cmd": ["echo", f"exec{i}"]})
                self.results.append((i, r.status_code, took, r.json() if r.status_code == 200 else r.text))
            except httpx.HTTPError as e:
                self.results.append((i, None, None, repr(e)))
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        self.thread.join(30)
        return self.results


def submit(url, key, idem, i):
    return timed("POST", f"{url}/v1/runs", headers={**auth(key), "Idempotency-Key": idem},
                 json={"cmd": ["sh", "-c", f"sleep {3 if i >= 100 else 1}; echo run{i}"]})


def wait_ready(url, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready again after {limit} s")


def test_a_fleet_rides_out_a_crashed_and_a_stopped_postgresql(durable_pg, fleet):
    pgdir, _ = durable_pg
    a, b = fleet("a"), fleet("b")
    k = subprocess.run([BIN, "key", "create", "--tenant", "faults", "--store", a.store, "--data", a.data],
                       check=True, capture_output=True, text=True).stdout.strip()
    r = httpx.post(f"{a.url}/v1/sandboxes", headers=auth(k), json={}, timeout=60)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        ride_out(pgdir, a, b, k, sid)
    finally:
        # Sandboxes outlive a node's stop by design: a failing test must not leave one running.
        httpx.delete(f"{a.url}/v1/sandboxes/{sid}", headers=auth(k), timeout=60)


def ride_out(pgdir, a, b, k, sid):
    execs = Execs(a.url, k, sid)
    accepted = {}   # idempotency key -> run id
    refused = []    # (idempotency key, i) answered 503

    def submit_batch(first, count, node):
        for i in range(first, first + count):
            idem = f"faults-{i}-{uuid.uuid4().hex[:6]}"
            try:
                r, took = submit(node.url, k, idem, i)
            except httpx.HTTPError as e:
                raise AssertionError(f"run {i}: no answer ({e!r})")
            if r.status_code == 202:
                accepted[idem] = (r.json()["id"], i)
            else:
                assert_store_unavailable(r, took, f"POST /v1/runs #{i}")
                refused.append((idem, i))

    # Runs in flight, then a crash and an immediate restart in the middle of more submits.
    submit_batch(0, 10, a)
    crash = threading.Thread(target=lambda: (pg("down", pgdir), pg("up", pgdir)))
    crash.start()
    submit_batch(10, 10, b)
    crash.join(60)

    # The database stopped for 10 s: calls that need it are refused fast and clearly, the
    # processes stay healthy and the live sandbox keeps answering.
    for node in (a, b):
        wait_ready(node.url)
    # Runs in flight when the database goes away: they finish and are recorded once it is back.
    submit_batch(100, 4, a)
    long_ids = [rid for rid, i in accepted.values() if i >= 100]
    deadline = time.time() + 60
    while not any(httpx.get(f"{a.url}/v1/runs/{rid}", headers=auth(k), timeout=30).json()["state"] == "running"
                  for rid in long_ids):
        assert time.time() < deadline, "none of the runs started"
        time.sleep(0.05)
    pg("down", pgdir)
    stopped_at = time.time()
    seen_unready = set()
    i = 20
    while time.time() - stopped_at < 10:
        node = (a, b)[i % 2]
        r, took = submit(node.url, k, f"down-{i}-{uuid.uuid4().hex[:6]}", i)
        assert_store_unavailable(r, took, f"POST /v1/runs during the outage on {node.data}")
        r, took = timed("GET", f"{node.url}/v1/runs", headers=auth(k))
        assert_store_unavailable(r, took, "GET /v1/runs during the outage")
        r, took = timed("GET", f"{node.url}/readyz")
        assert_store_unavailable(r, took, "/readyz during the outage")
        seen_unready.add(node.url)
        assert httpx.get(f"{node.url}/healthz", timeout=5).status_code == 200
        i += 1
        time.sleep(0.3)
    assert seen_unready == {a.url, b.url}
    pg("up", pgdir)
    for node in (a, b):
        wait_ready(node.url)
    time.sleep(1)
    results = execs.stop()

    # Exec never waited on the store: every one answered, and correctly.
    assert results, "no exec ran"
    failed = [x for x in results if x[1] != 200]
    assert not failed, f"execs failed during the outage: {failed[:5]}"
    assert all(x[3]["stdout"] == f"exec{x[0]}\n" for x in results), results[:3]
    print(f"{len(results)} execs through the outages, slowest {max(x[2] for x in results):.2f} s; "
          f"{len(REFUSALS)} store_unavailable answers, slowest {max(REFUSALS):.2f} s, median {sorted(REFUSALS)[len(REFUSALS) // 2]:.3f} s")

    # What was refused is submitted again (same key); every accepted run ends once, succeeded.
    for idem, i in refused:
        r, _ = submit(b.url, k, idem, i)
        assert r.status_code == 202, r.text
        accepted[idem] = (r.json()["id"], i)
    for idem, (rid, i) in accepted.items():
        deadline = time.time() + 180
        while True:
            run = httpx.get(f"{b.url}/v1/runs/{rid}", headers=auth(k), timeout=30).json()
            if run["state"] not in ("queued", "running"):
                break
            assert time.time() < deadline, f"run {rid} did not finish: {run}"
            time.sleep(0.2)
        assert run["state"] == "succeeded", run
        assert run["result"]["stdout"] == f"run{i}\n", run
    listed = httpx.get(f"{b.url}/v1/runs", headers=auth(k), params={"limit": 200}, timeout=30).json()["items"]
    ids = [x["id"] for x in listed]
    assert len(ids) == len(set(ids)) == len(accepted), (len(ids), len(accepted))

    # The sandbox's trail has each exec exactly once, in order, once the spooled entries landed.
    deadline = time.time() + 60
    while True:
        lines = httpx.get(f"{a.url}/v1/sandboxes/{sid}/audit", headers=auth(k), params={"limit": 10000}, timeout=30).text
        events = [json.loads(x) for x in lines.splitlines() if x.strip()]
        starts = [e for e in events if e["kind"] == "exec.start"]
        if len(starts) >= len(results) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert len(starts) == len(results), f"{len(starts)} exec.start entries for {len(results)} execs"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


@pytest.fixture
def small_disk():
    require_root()
    root = tempfile.mkdtemp(prefix="sbx-full-")
    os.chmod(root, 0o755)
    data = os.path.join(root, "data")
    os.makedirs(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "sbx-full", data], check=True)
    yield root, data
    subprocess.run(["umount", "-l", data], check=False)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(data + ".state", ignore_errors=True)


def test_sqlite_on_a_full_disk_answers_507_and_recovers_without_a_restart(small_disk):
    root, data = small_disk
    k = subprocess.run([BIN, "key", "create", "--tenant", "full", "--data", data],
                       check=True, capture_output=True, text=True).stdout.strip()
    server = Server(data, args=["--workers", "2", "--metrics-tenant", "full"])
    server.start()
    c = httpx.Client(base_url=server.url, headers=auth(k), timeout=30)
    sid = None
    try:
        sid = c.post("/v1/sandboxes", json={}).json()["id"]
        r = c.post("/v1/runs", json={"cmd": ["sh", "-c", "sleep 3; echo done"]})
        assert r.status_code == 202, r.text
        in_flight = r.json()["id"]
        # Fill the filesystem to the last block while the run is running.
        subprocess.run(["sh", "-c", f"dd if=/dev/zero of={data}/filler bs=64k 2>/dev/null"], check=False)
        refused = None
        for i in range(50):
            r, took = timed("POST", f"{server.url}/v1/runs", headers=auth(k),
                            json={"cmd": ["echo", "x" * 60000]})
            assert took < BOUND, f"POST /v1/runs took {took:.2f} s on a full disk"
            if r.status_code != 202:
                refused = r
                break
        assert refused is not None, "the full disk never refused a run"
        assert refused.status_code == 507, refused.text
        assert refused.json()["code"] == "insufficient_storage", refused.text
        assert "full" in refused.json()["detail"]
        r, took = timed("GET", f"{server.url}/readyz")
        assert r.status_code == 503 and took < BOUND, r.text
        # The operator sees it in the metrics, which do not need the store.
        r = c.get("/metrics")
        assert r.status_code == 200 and re.search(r"^sandboxer_store_up 0(\.0)?$", r.text, re.M), r.text[-500:]
        # The live sandbox does not care.
        r = c.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["echo", "still here"]})
        assert r.status_code == 200 and r.json()["stdout"] == "still here\n", r.text

        os.remove(f"{data}/filler")
        wait_ready(server.url)
        deadline = time.time() + 60
        while (run := c.get(f"/v1/runs/{in_flight}").json())["state"] in ("queued", "running"):
            assert time.time() < deadline, run
            time.sleep(0.2)
        assert run["state"] == "succeeded" and run["result"]["stdout"] == "done\n", run
        r = c.post("/v1/runs", json={"cmd": ["echo", "after"]})
        assert r.status_code == 202, r.text
        assert re.search(r"^sandboxer_store_up 1(\.0)?$", c.get("/metrics").text, re.M)
    finally:
        if sid and os.path.exists(f"{data}/filler"):
            os.remove(f"{data}/filler")
        if sid:
            c.delete(f"/v1/sandboxes/{sid}")
        server.stop()
        server.log.close()
