"""Bounties end to end (issue 21): agents uploaded and scanned, submitted to a bounty whose verifier
holds the expected output as hidden data, scored, ranked; hidden data never reaches an agent.

The bounty "sort these numbers" has three cases; each case's hidden data is the expected output
and a marker string that exists nowhere else. Agents:
- right: JavaScript in the WASM lane, sorts numerically (scores 1 on every case);
- wrong: Python in the container lane, sorts as strings (right on one case of three);
- cheater: Python in the container lane; looks for anything shaped like the marker on stdin, in
  its environment, in /proc/*/environ and /proc/*/cmdline and in the filesystem (/workspace, /code,
  then all of /), prints what it found, tries TCP to 127.0.0.1 and to the host's address (a
  listener of this test on both), then sleeps 60 s, so every case times out (0, `timed_out`);
- big (one file over 512 KiB) and traversal (a `../` path): blocked at upload, 422 when submitted.

The cheater's scan is shown to work by a control token of the same shape in its own bundle
(which it must find and print): the marker's absence from everything it printed therefore means
the marker was not there to find, not that the scan missed it.

Runs on the suite's server (scripts/api-tests.sh: tenants A and B, two run workers).
"""
import json
import re
import secrets
import socket
import threading
import time
import uuid

import pytest

from conftest import assert_problem, require_root, wait_run, wait_state

CASES = [("3 1 2", "1 2 3"), ("10 9 2", "2 9 10"), ("5 40 300 7", "5 7 40 300")]
FINAL_SUBMISSION_STATES = {"scored", "failed"}

VERIFIER = r'''
import json, sys
req = json.load(sys.stdin)
hidden = json.loads(req["hidden"])
got = req["output"].split()
if req["exit_code"] != 0:
    print(json.dumps({"score": 0, "message": "exit code %d" % req["exit_code"]}))
elif got == hidden["expected"].split():
    print(json.dumps({"score": 1, "message": "sorted"}))
else:
    print(json.dumps({"score": 0, "message": "not sorted"}))
'''

RIGHT_JS = r'''
const nums = readStdin().trim().split(/\s+/).map(Number);
nums.sort((a, b) => a - b);
console.log(nums.join(" "));
'''

WRONG_PY = r'''
import sys
print(" ".join(sorted(sys.stdin.read().split())))
'''

# Looks for anything shaped like a marker ("ZQX" + 32 hex digits + "QXZ"). Its own source holds
# only the pattern, which does not match itself.
CHEATER_PY = r'''
import json, os, re, socket, sys, time
PAT = re.compile(rb"ZQX[0-9a-f]{32}QXZ")
seen = set()

def look(where, data):
    for m in PAT.findall(data):
        if (where, m) not in seen:
            seen.add((where, m))
            print("FOUND", where, m.decode(), flush=True)

def walk(root, skip=()):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > (16 << 20):
                    continue
                with open(path, "rb") as f:
                    look(path, f.read())
            except OSError:
                pass

look("stdin", sys.stdin.buffer.read())
for k, v in os.environ.items():
    look("env:" + k, (k + "=" + v).encode())
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for what in ("environ", "cmdline"):
            try:
                with open("/proc/%s/%s" % (pid, what), "rb") as f:
                    look("/proc/%s/%s" % (pid, what), f.read())
            except OSError:
                pass
quick = ["/workspace", "/code", "/tmp", "/home", "/root", "/run", "/etc", "/var/tmp", "/opt", "/srv", "/mnt"]
for d in quick:
    walk(d)
files = sorted(os.path.relpath(os.path.join(d, f), "/workspace") for d, _, fs in os.walk("/workspace") for f in fs)
print("WORKSPACE", json.dumps(files), flush=True)
print("QUICK-SCAN DONE", flush=True)
for host in ["127.0.0.1", HOST_IP]:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, PORT))
        print("CONNECT", host, "ok", flush=True)
    except OSError as e:
        print("CONNECT", host, "error", type(e).__name__, flush=True)
    finally:
        s.close()
walk("/", skip={"/proc", "/sys", "/dev"} | set(quick))
print("FULL-SCAN DONE", flush=True)
time.sleep(60)
'''


def tag():
    return uuid.uuid4().hex[:10]


def token():
    return "ZQX" + secrets.token_hex(16) + "QXZ"


def host_address():
    """A non-loopback address of this host (the source address of a route; nothing is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.254.254.254", 9))
        return s.getsockname()[0]
    except OSError:
        return "10.254.254.254"
    finally:
        s.close()


class Listener:
    """A TCP listener on every address of the host that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopped.is_set():
            try:
                conn, addr = self.sock.accept()
                self.accepted.append(addr)
                conn.close()
            except OSError:
                continue

    def close(self):
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def create_agent(client, name):
    r = client.post("/v1/agents", json={"name": name})
    assert r.status_code == 201, (r.status_code, r.text)
    agent = r.json()
    assert agent["id"].startswith("agt-") and agent["name"] == name, agent
    return agent


def push(client, agent_id, files, manifest, status=201):
    r = client.post(f"/v1/agents/{agent_id}/versions", json={"files": files, "manifest": manifest})
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", body["digest"]), body
    return body


def submit(client, bounty_id, digest):
    r = client.post(f"/v1/bounties/{bounty_id}/submissions", json={"agent_version": digest})
    assert r.status_code == 202, (r.status_code, r.text)
    sub = r.json()
    assert sub["id"].startswith("sub-") and sub["state"] == "queued", sub
    return sub


def wait_submission(client, sid, timeout=300):
    """Polls GET /v1/submissions/{sid} until scored or failed."""
    return wait_state(client, f"/v1/submissions/{sid}", FINAL_SUBMISSION_STATES, timeout, every=0.5)


@pytest.fixture(scope="module")
def world(client):
    """One bounty, five agents (three submitted and scored, two blocked), the cheater's listener."""
    require_root()
    t = tag()
    marker = token()
    control = token()
    bounty = client.post("/v1/bounties", json={
        "title": f"sort these numbers {t}",
        "profile": "bounty",
        "cases": [{"input": i, "hidden": json.dumps({"expected": e, "secret": marker})} for i, e in CASES],
        "verifier": {"lang": "python", "code": VERIFIER},
    })
    assert bounty.status_code == 201, (bounty.status_code, bounty.text)
    bounty = bounty.json()
    assert bounty["id"].startswith("bnt-"), bounty

    listener = Listener()
    host_ip = host_address()
    agents = {}
    for name in ("right", "wrong", "cheater", "big", "traversal"):
        agents[name] = create_agent(client, f"{name}-{t}")
    versions = {
        "right": push(client, agents["right"]["id"], {"main.js": RIGHT_JS},
                      {"lang": "js", "entrypoint": "main.js", "isolation": "wasm"}),
        "wrong": push(client, agents["wrong"]["id"], {"main.py": WRONG_PY},
                      {"lang": "python", "entrypoint": "main.py", "isolation": "container"}),
        "cheater": push(client, agents["cheater"]["id"],
                        {"main.py": f"HOST_IP = {host_ip!r}\nPORT = {listener.port}\n" + CHEATER_PY,
                         "data/control.txt": f"a token the scan must find: {control}\n"},
                        {"lang": "python", "entrypoint": "main.py", "isolation": "container", "limits": {"timeout": "15s"}}),
        "big": push(client, agents["big"]["id"], {"main.py": "print(1)\n", "blob.txt": "x" * (600 << 10)},
                    {"lang": "python", "entrypoint": "main.py", "isolation": "container"}),
        "traversal": push(client, agents["traversal"]["id"], {"main.py": "print(1)\n", "../escape.py": "print(2)\n"},
                          {"lang": "python", "entrypoint": "main.py", "isolation": "container"}),
    }
    submissions = {}
    for name in ("right", "wrong", "cheater"):
        submissions[name] = submit(client, bounty["id"], versions[name]["digest"])
    try:
        scored = {name: wait_submission(client, sub["id"]) for name, sub in submissions.items()}
    finally:
        listener.close()
    yield {"bounty": bounty, "agents": agents, "versions": versions, "submissions": scored, "marker": marker,
           "control": control, "listener": listener, "host_ip": host_ip}


def test_uploads_are_scanned_and_the_bad_ones_blocked(client, world):
    v = world["versions"]
    for name in ("right", "wrong", "cheater"):
        assert v[name]["status"] == "accepted" and v[name]["findings"] == [], (name, v[name])
    big = {f["code"]: f for f in v["big"]["findings"]}
    assert v["big"]["status"] == "blocked", v["big"]
    assert {"bundle_too_large", "file_too_large"} <= set(big), v["big"]
    assert big["file_too_large"].get("path") == "blob.txt", big
    trav = {f["code"]: f for f in v["traversal"]["findings"]}
    assert v["traversal"]["status"] == "blocked" and "path_traversal" in trav, v["traversal"]
    assert trav["path_traversal"].get("path") == "../escape.py", trav
    # the same content again: the same digest, 200, nothing new
    again = push(client, world["agents"]["right"]["id"], {"main.js": RIGHT_JS},
                 {"lang": "js", "entrypoint": "main.js", "isolation": "wasm"}, status=200)
    assert again["digest"] == v["right"]["digest"], again
    # the registry's view of a blocked version lists its findings (no file contents)
    view = client.get(f"/v1/agents/{world['agents']['traversal']['id']}/versions/{v['traversal']['digest']}")
    assert view.status_code == 200, view.text
    assert view.json()["status"] == "blocked" and "path_traversal" in {f["code"] for f in view.json()["findings"]}, view.text
    # nor does the accepted cheater's: paths and sizes only, never its files' contents
    view = client.get(f"/v1/agents/{world['agents']['cheater']['id']}/versions/{v['cheater']['digest']}")
    assert view.status_code == 200, view.text
    assert sorted(f["path"] for f in view.json()["files"]) == ["data/control.txt", "main.py"], view.text
    assert world["control"] not in view.text and "PAT = re.compile" not in view.text, view.text


def test_blocked_versions_cannot_be_submitted(client, world):
    for name, code in (("big", None), ("traversal", "path_traversal")):
        r = client.post(f"/v1/bounties/{world['bounty']['id']}/submissions",
                        json={"agent_version": world["versions"][name]["digest"]})
        body = assert_problem(r, 422, "agent_blocked")
        # the problem names every finding, in its detail and as a list
        assert body["findings"] == world["versions"][name]["findings"], body
        assert all(f["code"] in body["detail"] for f in body["findings"]), body
        if code:
            assert code in [f["code"] for f in body["findings"]], body


def test_cases_are_scored_with_their_reasons(world):
    subs = world["submissions"]
    right, wrong, cheater = subs["right"], subs["wrong"], subs["cheater"]
    for s in (right, wrong, cheater):
        assert s["state"] == "scored", s
        assert [c["index"] for c in s["cases"]] == [0, 1, 2], s
        assert all(c["run_id"] for c in s["cases"]), s
    assert right["score"] == 1, right
    # a verified case's reason is `verified`, with the verifier's message beside it
    assert [(c["score"], c["reason"], c["message"]) for c in right["cases"]] == [(1, "verified", "sorted")] * 3, right
    # string order: "3 1 2" comes out right, "10 9 2" and "5 40 300 7" do not
    assert [(c["score"], c["reason"], c["message"]) for c in wrong["cases"]] == [
        (1, "verified", "sorted"), (0, "verified", "not sorted"), (0, "verified", "not sorted")], wrong
    assert wrong["score"] == pytest.approx(1 / 3), wrong
    assert cheater["score"] == 0, cheater
    assert [(c["score"], c["reason"]) for c in cheater["cases"]] == [(0, "timed_out")] * 3, cheater
    # verified cases have a verifier run; the agent and verifier runs are ordinary runs of the queue
    for c in right["cases"] + wrong["cases"]:
        assert c["verifier_run_id"] and c["verifier_run_id"] != c["run_id"], c


def test_leaderboard_ranks_right_over_wrong_over_cheater(client, world):
    r = client.get(f"/v1/bounties/{world['bounty']['id']}/leaderboard")
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    agents, subs = world["agents"], world["submissions"]
    assert [e["agent"] for e in entries] == [agents["right"]["name"], agents["wrong"]["name"], agents["cheater"]["name"]], entries
    assert [e["rank"] for e in entries] == [1, 2, 3], entries
    assert [e["submission_id"] for e in entries] == [subs["right"]["id"], subs["wrong"]["id"], subs["cheater"]["id"]], entries
    assert [e["digest"] for e in entries] == [world["versions"][n]["digest"] for n in ("right", "wrong", "cheater")], entries
    assert entries[0]["score"] == 1 and entries[1]["score"] == pytest.approx(1 / 3) and entries[2]["score"] == 0, entries
    assert all(isinstance(e["cpu_ms"], (int, float)) and e["cpu_ms"] >= 0 for e in entries), entries


def test_the_agent_runs_ran_as_submitted(client, world):
    subs = world["submissions"]
    for name, isolation in (("right", "wasm"), ("wrong", "container"), ("cheater", "container")):
        for c in subs[name]["cases"]:
            run = client.get(f"/v1/runs/{c['run_id']}").json()
            assert run["isolation"] == isolation and run["profile"] == "bounty", run
            assert run["labels"].get("role") == "agent" and run["labels"].get("submission") == subs[name]["id"], run
    for c, (_, expected) in zip(subs["right"]["cases"], CASES):
        run = wait_run(client, c["run_id"])
        assert run["state"] == "succeeded" and run["result"]["stdout"] == expected + "\n", run
    for c in subs["cheater"]["cases"]:
        run = wait_run(client, c["run_id"])
        assert run["state"] == "timed_out", run


def cheater_logs(client, world):
    out = []
    for c in world["submissions"]["cheater"]["cases"]:
        r = client.get(f"/v1/runs/{c['run_id']}/logs")
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def test_hidden_data_never_reaches_the_agent(client, world):
    marker, control = world["marker"], world["control"]
    for logs in cheater_logs(client, world):
        stdout = logs["stdout"]
        # the scan worked: it found the control token in the agent's own bundle...
        assert f"FOUND /workspace/data/control.txt {control}" in stdout, logs
        assert "QUICK-SCAN DONE" in stdout, logs
        # ...and nothing else of that shape anywhere: not on stdin, in the environment, /proc or files
        found = [line for line in stdout.splitlines() if line.startswith("FOUND")]
        assert all(control in line for line in found), found
        assert marker not in stdout and marker not in logs["stderr"], logs
        assert "stdout_base64" not in logs and "stderr_base64" not in logs, logs
        # /workspace holds the agent's own bundle and nothing else
        listing = [line for line in stdout.splitlines() if line.startswith("WORKSPACE ")]
        assert len(listing) == 1 and json.loads(listing[0][len("WORKSPACE "):]) == ["data/control.txt", "main.py"], listing
    # an agent run that did not finish never reaches a verifier: no run ever got its case's hidden data
    assert all(c["verifier_run_id"] is None for c in world["submissions"]["cheater"]["cases"]), world["submissions"]["cheater"]


def test_the_agent_cannot_open_sockets(world, client):
    for logs in cheater_logs(client, world):
        stdout = logs["stdout"]
        assert "CONNECT 127.0.0.1 error" in stdout, stdout
        assert f"CONNECT {world['host_ip']} error" in stdout, stdout
        assert " ok" not in "\n".join(l for l in stdout.splitlines() if l.startswith("CONNECT")), stdout
    assert world["listener"].accepted == [], world["listener"].accepted


def test_no_agent_run_view_or_record_holds_the_hidden_data(client, world):
    marker = world["marker"]
    checked = 0
    for name in ("right", "wrong", "cheater"):
        for c in world["submissions"][name]["cases"]:
            run = client.get(f"/v1/runs/{c['run_id']}")
            assert run.status_code == 200 and marker not in run.text, run.text
            record = client.get(f"/v1/runs/{c['run_id']}/record")
            assert record.status_code == 200, record.text
            assert marker not in record.text, record.text
            rec = record.json()
            assert rec["run_id"] == c["run_id"] and rec["agent_digest"] == world["versions"][name]["digest"], rec
            logs = client.get(f"/v1/runs/{c['run_id']}/logs")
            assert logs.status_code == 200 and marker not in logs.text, logs.text
            checked += 1
    assert checked == 9
    # the bounty as its owner sees it shows no hidden data either, nor do the submissions
    bounty = client.get(f"/v1/bounties/{world['bounty']['id']}")
    assert bounty.status_code == 200 and marker not in bounty.text, bounty.text
    for sub in world["submissions"].values():
        assert marker not in client.get(f"/v1/submissions/{sub['id']}").text
    board = client.get(f"/v1/bounties/{world['bounty']['id']}/leaderboard")
    assert marker not in board.text


def test_another_tenant_sees_none_of_it(client_b, world):
    bid = world["bounty"]["id"]
    assert_problem(client_b.get(f"/v1/bounties/{bid}"), 404, "not_found")
    assert_problem(client_b.get(f"/v1/bounties/{bid}/leaderboard"), 404, "not_found")
    assert_problem(client_b.post(f"/v1/bounties/{bid}/submissions", json={"agent_version": world["versions"]["right"]["digest"]}),
                   404, "not_found")
    for name, agent in world["agents"].items():
        assert_problem(client_b.get(f"/v1/agents/{agent['id']}"), 404, "not_found")
        assert_problem(client_b.get(f"/v1/agents/{agent['id']}/versions/{world['versions'][name]['digest']}"), 404, "not_found")
        assert_problem(client_b.post(f"/v1/agents/{agent['id']}/versions",
                                     json={"files": {"main.py": "print(1)\n"},
                                           "manifest": {"lang": "python", "entrypoint": "main.py", "isolation": "container"}}),
                       404, "not_found")
    listed = client_b.get("/v1/agents")
    assert listed.status_code == 200, listed.text
    assert not {a["id"] for a in listed.json()["items"]} & {a["id"] for a in world["agents"].values()}, listed.text
    for sub in world["submissions"].values():
        assert_problem(client_b.get(f"/v1/submissions/{sub['id']}"), 404, "not_found")
        for c in sub["cases"]:
            for rid in filter(None, (c["run_id"], c["verifier_run_id"])):
                assert_problem(client_b.get(f"/v1/runs/{rid}"), 404, "not_found")
                assert_problem(client_b.get(f"/v1/runs/{rid}/logs"), 404, "not_found")
                assert_problem(client_b.get(f"/v1/runs/{rid}/record"), 404, "not_found")


def test_agent_versions_do_not_cross_tenants(client, client_b, world):
    """Tenant B's version cannot be submitted to tenant A's bounty, by either tenant."""
    agent = create_agent(client_b, f"b-agent-{tag()}")
    # content of its own: a digest names content, so the same files in tenant A would be A's own version
    version = push(client_b, agent["id"], {"main.py": f"# tenant b {tag()}\n" + WRONG_PY},
                   {"lang": "python", "entrypoint": "main.py", "isolation": "container"})
    bid = world["bounty"]["id"]
    assert_problem(client.post(f"/v1/bounties/{bid}/submissions", json={"agent_version": version["digest"]}), 404, "not_found")
    assert_problem(client_b.post(f"/v1/bounties/{bid}/submissions", json={"agent_version": version["digest"]}), 404, "not_found")


def test_tenant_b_may_reuse_tenant_a_names(client_b, world):
    """Agent names are unique per tenant only."""
    r = client_b.post("/v1/agents", json={"name": world["agents"]["right"]["name"]})
    assert r.status_code == 201, r.text


def test_duplicate_agent_name_is_409(client, world):
    assert_problem(client.post("/v1/agents", json={"name": world["agents"]["right"]["name"]}), 409)


def test_the_right_agents_wasm_run_replays_byte_for_byte(client, world):
    original = world["submissions"]["right"]["cases"][1]["run_id"]
    r = client.post(f"/v1/runs/{original}/replay")
    assert r.status_code == 202, r.text
    replay = wait_run(client, r.json()["id"], timeout=120)
    assert replay["replay_of"] == original, replay
    assert replay["state"] == "succeeded" and replay["result"]["stdout"] == "2 9 10\n", replay
    assert replay["output_matches"] is True, replay


def test_agents_are_listed_a_page_at_a_time(client):
    """GET /v1/agents pages like /v1/sandboxes: limit, next_cursor until the last page (null)."""
    mine = [create_agent(client, f"page-{tag()}-{i}")["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        r = client.get("/v1/agents", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2 and "next_cursor" in page, page
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 1000
    assert len(seen) == len(set(seen)), "no agent on two pages"
    assert [a for a in seen if a in mine] == mine, "oldest first, every one once"
    for params in ({"limit": 0}, {"limit": "x"}, {"cursor": "nope"}, {"page": 2}):
        assert_problem(client.get("/v1/agents", params=params), 400)
