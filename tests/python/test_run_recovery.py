"""Crash recovery of the run queue on one node: `sandboxer serve` is kill -9'ed with runs queued
and running, then restarted on the same data directory. Every run accepted with a 202 reaches a
final state (the interrupted ones with a `worker_lost` attempt), and no sandbox directory, cgroup,
mount or process of the killed runs is left on the host.

Runs its own server on its own data and state directories (the suite's server is left alone).
"""
import glob
import os
import time

import httpx
import pytest

from conftest import auth, drop_server, own_server, processes_mentioning, submit_run, wait_run


@pytest.fixture
def node():
    server, key = own_server("sandboxer-run-recovery-", "r", args=["--workers", "2"])
    state = {"server": server, "key": key, "ids": []}
    yield state
    try:
        # A server that the test left dead is started again so its runs end and nothing leaks.
        if server.proc.poll() is not None:
            server.start()
        with httpx.Client(base_url=server.url, headers=auth(key), timeout=60) as c:
            for rid in state["ids"]:
                c.post(f"/v1/runs/{rid}/cancel")
            for rid in state["ids"]:
                try:
                    wait_run(c, rid, timeout=60)
                except AssertionError:
                    pass
    finally:
        drop_server(server)


def leftovers(state_root, sandbox_ids):
    """What the host still holds of this server's sandboxes: directories, cgroups, mounts."""
    problems = []
    for d in glob.glob(os.path.join(state_root, "servers", "*", "sandboxes", "sbx-*")):
        problems.append(f"sandbox directory {d}")
    for sid in sandbox_ids:
        for g in glob.glob(f"/sys/fs/cgroup/*/sandboxer/{sid}") + glob.glob(f"/sys/fs/cgroup/sandboxer/{sid}"):
            problems.append(f"cgroup {g}")
    with open("/proc/mounts") as f:
        for line in f:
            mountpoint = line.split()[1]
            if mountpoint.startswith(state_root + "/") or any(sid in mountpoint for sid in sandbox_ids):
                problems.append(f"mount {mountpoint}")
    return problems


def test_kill9_with_runs_queued_and_running_loses_none(node):
    server = node["server"]
    tagged = f"ok-{os.getpid()}-{int(time.time())}"
    with httpx.Client(base_url=server.url, headers=auth(node["key"]), timeout=60) as c:
        for _ in range(6):
            node["ids"].append(submit_run(c, cmd=["sh", "-c", f"sleep 2; echo {tagged}"])["id"])
        deadline = time.time() + 60
        while True:
            running = c.get("/v1/runs", params={"state": "running"}).json()["items"]
            if len(running) == 2:
                break
            assert time.time() < deadline, f"never 2 runs running: {running}"
            time.sleep(0.05)
    server.kill9()

    # The one-shot sandboxes die with their server: their reaper (`sandboxer reap --state-dir …`)
    # kills and removes them; nothing of this server's state directory keeps running.
    deadline = time.time() + 20
    while processes_mentioning([server.state_root]) or processes_mentioning([tagged]):
        assert time.time() < deadline, f"left running after kill -9: {processes_mentioning([server.state_root]) + processes_mentioning([tagged])}"
        time.sleep(0.2)

    server.start()
    with httpx.Client(base_url=server.url, headers=auth(node["key"]), timeout=60) as c:
        finals = {rid: wait_run(c, rid, timeout=120) for rid in node["ids"]}
        for run in finals.values():
            # succeeded in the end; every earlier attempt is one the kill interrupted
            assert run["state"] == "succeeded", run
            assert run["result"]["stdout"] == tagged + "\n", run
            outcomes = [a["outcome"] for a in run["attempts"]]
            assert outcomes[-1] == "succeeded" and set(outcomes[:-1]) <= {"worker_lost"}, run
        lost = [run for run in finals.values() if len(run["attempts"]) > 1]
        # the two that were running (unless one ended in the instant before the kill)
        assert 1 <= len(lost) <= 2, finals
        for run in lost:
            assert "restarted" in run["attempts"][0]["reason"], run
        assert len(c.get("/v1/runs", params={"limit": 1000}).json()["items"]) == 6
        sandbox_ids = {a["sandbox_id"] for run in finals.values() for a in run["attempts"] if a.get("sandbox_id")}

    def left():
        return leftovers(server.state_root, sandbox_ids) + processes_mentioning([server.state_root, tagged])
    deadline = time.time() + 20
    while left():
        assert time.time() < deadline, f"left behind: {left()}"
        time.sleep(0.2)
