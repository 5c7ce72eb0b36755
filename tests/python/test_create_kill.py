"""A create cut short by `kill -9` of the server (issue 17, low item): the client never learned
the sandbox's id, so the restarted server must not keep it running — its record ends `lost` with
a reason, and nothing of it stays on the host (directory, mounts, processes).
"""
import glob
import os
import threading
import time

import httpx

from conftest import auth, drop_server, own_server, processes_mentioning


def sandbox_dirs(server):
    return glob.glob(os.path.join(server.state_root, "servers", "*", "sandboxes", "sbx-*"))


def mounts(server):
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if server.state_root in line]


def test_a_create_cut_by_kill_9_leaves_nothing_running():
    server, key = own_server("sandboxer-createkill-", "t")
    try:
        replies = []

        def create():
            try:
                replies.append(httpx.post(f"{server.url}/v1/sandboxes", headers=auth(key), json={"ttl": "10m"}, timeout=60))
            except httpx.HTTPError as e:
                replies.append(e)
        t = threading.Thread(target=create)
        t.start()
        # Kill the server as soon as the sandbox exists on the host (its create is under way).
        deadline = time.time() + 30
        while not sandbox_dirs(server):
            assert time.time() < deadline, "no sandbox directory appeared: " + server.log_text()
            time.sleep(0.005)
        server.kill9()
        t.join(60)

        server.start()
        with httpx.Client(base_url=server.url, headers=auth(key), timeout=60) as c:
            items = c.get("/v1/sandboxes", params={"limit": 1000}).json()["items"]
            learned = {r.json()["id"] for r in replies if isinstance(r, httpx.Response) and r.status_code == 201}
            unlearned = [sb for sb in items if sb["id"] not in learned]
            # The kill came mid-create (the record was written before the host sandbox), and the
            # restarted server ended it instead of adopting a sandbox nobody knows of.
            assert unlearned, (items, replies)
            for sb in unlearned:
                assert sb["state"] == "lost" and "being created" in (sb.get("reason") or ""), sb
        # Everything of the unlearned sandbox is gone from the host (a bound, not a speed test).
        deadline = time.time() + 20
        while True:
            left = [d for d in sandbox_dirs(server) if os.path.basename(d) not in learned] + \
                   [m for m in mounts(server) if not any(i in m for i in learned)]
            running = [p for p in processes_mentioning([server.state_root]) if not any(i in p[1] for i in learned)]
            if not left and not running:
                break
            assert time.time() < deadline, f"left behind: {left} {running}"
            time.sleep(0.2)
        with httpx.Client(base_url=server.url, headers=auth(key), timeout=60) as c:
            for sid in learned:
                c.delete(f"/v1/sandboxes/{sid}")
    finally:
        drop_server(server)
