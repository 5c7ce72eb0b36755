"""The sandbox-state property test (issue 19, "Correctness"), driven from outside through the HTTP API.

A seeded random sequence of file operations inside a sandbox (writes, appends, truncates, sparse
writes, renames, deletes, symlinks, chmods, mkdir/rmdir; through exec and through the files API) is
interleaved with pause/resume, hibernate/resume, snapshot → restore, fork, TTL extension and
`kill -9` of the server followed by a restart on the same data and state directories. After every
step the real tree (/workspace/t on the workspace tmpfs and /home/user/t on the writable root) is
read back with ONE exec and compared with a model: path → (kind, size, sha256, mode, link target).
A restore or fork must equal the model at snapshot time; the sequence goes on in one of the
sandboxes (the others are deleted) so the model stays single. At the end every file is deleted
(the tree must be empty), then every sandbox and snapshot, and nothing may be left of them: not in
the list, not in /proc/self/mountinfo, not in the cgroup trees, not in the data or state directory.

Even seeds start with the default (ephemeral) profile: a running one is adopted after the kill -9.
Odd seeds start with `persistence: persistent` (its root's changes and workspace on ext4 disks). A
restore picks either profile, so the sequence may go on in the other kind. Either kind
may come back running, paused or hibernated after a restart: the tree must be the same.

SANDBOXER_PROPERTY_SEEDS (comma-separated, default 1,2,3,4) and SANDBOXER_PROPERTY_STEPS (default
200) change the run. A failure prints the seed, the step, the tail of the op history and the diff.
"""
import base64
import datetime
import hashlib
import json
import os
import random
import time

import httpx
import pytest

from conftest import auth, drop_server, own_server

SEEDS = [int(s) for s in os.environ.get("SANDBOXER_PROPERTY_SEEDS", "1,2,3,4").split(",") if s.strip()]
STEPS = int(os.environ.get("SANDBOXER_PROPERTY_STEPS", "200"))
ROOTS = ["/workspace/t", "/home/user/t"]
NAMES = ["a", "b", "c", "-dash", "sp ace", "ünï", "long" * 10]
DIRS = ["d1", "d2"]
FILE_MODES = [0o600, 0o640, 0o644, 0o755, 0o700, 0o444]
DIR_MODES = [0o755, 0o700, 0o750, 0o775]
LINK_TARGETS = ["a", "../a", "d1/b", "/etc/passwd", "nowhere", "sp ace", "../../t"]
TTL = "30m"

# Runs inside the sandbox as `python3 -c AGENT OP_JSON`: applies the op (if any), then prints the
# listing of both roots as JSON. The op's fields are data, never code or shell text.
AGENT = r'''
import sys, os, json, hashlib, base64, stat
ROOTS = %s
def write_all(fd, data):
    while data:
        n = os.write(fd, data); data = data[n:]
def do(op):
    k = op["k"]; p = op.get("p")
    data = base64.b64decode(op.get("data", ""))
    if k in ("write", "append", "truncate", "sparse") and os.path.lexists(p):
        mode = stat.S_IMODE(os.lstat(p).st_mode)
        if not mode & 0o200:   # a read-only file: writable for the op, its mode back after
            os.chmod(p, mode | 0o200)
            try:
                do({**op, "k": k + "!"})
            finally:
                if k in ("append", "truncate"):
                    os.chmod(p, mode)
            return
        k = k.rstrip("!")
    k = k.rstrip("!")
    if k == "setup":
        for r in ROOTS:
            os.makedirs(r, exist_ok=True); os.chmod(r, 0o755)
    elif k == "write":
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        write_all(fd, data); os.fchmod(fd, op["mode"]); os.close(fd)
    elif k == "append":
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        write_all(fd, data); os.close(fd)
    elif k == "truncate":
        fd = os.open(p, os.O_WRONLY | os.O_NOFOLLOW); os.ftruncate(fd, op["n"]); os.close(fd)
    elif k == "sparse":
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.pwrite(fd, data, op["off"]); os.fchmod(fd, op["mode"]); os.close(fd)
    elif k == "rename":
        os.rename(p, op["to"])
    elif k == "delete":
        os.unlink(p)
    elif k == "symlink":
        os.symlink(op["target"], p)
    elif k == "chmod":
        os.chmod(p, op["mode"], follow_symlinks=False)
    elif k == "mkdir":
        os.mkdir(p); os.chmod(p, op["mode"])
    elif k == "rmdir":
        os.rmdir(p)
    else:
        raise SystemExit("unknown op " + k)
def entry(path):
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ["l", None, None, None, os.readlink(path)]
    if stat.S_ISDIR(st.st_mode):
        return ["d", None, None, stat.S_IMODE(st.st_mode), None]
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return ["f", st.st_size, h.hexdigest(), stat.S_IMODE(st.st_mode), None]
    return ["?", st.st_mode, None, None, None]
if len(sys.argv) > 1 and sys.argv[1]:
    do(json.loads(sys.argv[1]))
out = {}
for root in ROOTS:
    if not os.path.lexists(root):
        continue
    out[root] = entry(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[full] = entry(full)
print(json.dumps(out, sort_keys=True))
''' % json.dumps(ROOTS)


class Divergence(AssertionError):
    pass


class Model:
    """The expected tree: path → ["f", bytearray, mode] | ["d", mode] | ["l", target]."""

    def __init__(self):
        self.tree = {r: ["d", 0o755] for r in ROOTS}

    def copy(self):
        m = Model()
        m.tree = {p: ([v[0], bytearray(v[1]), v[2]] if v[0] == "f" else list(v)) for p, v in self.tree.items()}
        return m

    def expected(self):
        out = {}
        for p, v in self.tree.items():
            if v[0] == "f":
                out[p] = ["f", len(v[1]), hashlib.sha256(bytes(v[1])).hexdigest(), v[2], None]
            elif v[0] == "d":
                out[p] = ["d", None, None, v[1], None]
            else:
                out[p] = ["l", None, None, None, v[1]]
        return out

    def kind(self, p):
        v = self.tree.get(p)
        return v[0] if v else None

    def apply(self, op):
        k, p = op["k"], op.get("p")
        data = base64.b64decode(op.get("data", ""))
        t = self.tree
        if k == "write":
            t[p] = ["f", bytearray(data), op["mode"]]
        elif k == "append":
            t[p][1] += data
        elif k == "truncate":
            b = t[p][1]
            n = op["n"]
            t[p][1] = b[:n] if n <= len(b) else b + bytearray(n - len(b))
        elif k == "sparse":
            b = t[p][1] if p in t else bytearray()
            off = op["off"]
            if len(b) < off:
                b += bytearray(off - len(b))
            b[off:off + len(data)] = data
            t[p] = ["f", b, op["mode"]]
        elif k == "rename":
            t[op["to"]] = t.pop(p)
        elif k == "delete":
            del t[p]
        elif k == "symlink":
            t[p] = ["l", op["target"]]
        elif k == "chmod":
            t[p][-1] = op["mode"]
        elif k == "mkdir":
            t[p] = ["d", op["mode"]]
        elif k == "rmdir":
            del t[p]


def diff(expected, actual):
    lines = []
    for p in sorted(set(expected) | set(actual)):
        e, a = expected.get(p), actual.get(p)
        if e != a:
            lines.append(f"  {p!r}: expected {e} got {a}")
    return "\n".join(lines)


class Run:
    """One seed's sequence against one server."""

    def __init__(self, server, key, seed, steps):
        self.server, self.key, self.seed, self.steps = server, key, seed, steps
        self.rng = random.Random(seed)
        self.profile = {"persistence": "persistent"} if seed % 2 else "default"
        self.model = Model()
        self.history = []
        self.step = 0
        self.sid = None
        self.made = []        # every sandbox id this run created
        self.snapshots = []   # every snapshot id it made
        self.spent = {}       # seconds per kind of state op (printed, not asserted)
        self.client = self.new_client()

    def new_client(self):
        return httpx.Client(base_url=self.server.url, headers=auth(self.key), timeout=httpx.Timeout(120.0, connect=10.0))

    # --- failure reporting ---------------------------------------------------------------------
    def fail(self, message):
        tail = "\n".join(f"  #{i}: {h}" for i, h in self.history[-15:])
        raise Divergence(f"seed {self.seed} (profile {self.profile}), step {self.step}: {message}\n"
                         f"last ops:\n{tail}\n(rerun: SANDBOXER_PROPERTY_SEEDS={self.seed} SANDBOXER_PROPERTY_STEPS={self.steps})")

    def note(self, what):
        self.history.append((self.step, what))

    def check(self, r, status, what):
        if r.status_code != status:
            self.fail(f"{what}: HTTP {r.status_code} (expected {status}): {r.text[:500]}")
        return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None

    # --- the sandbox side ----------------------------------------------------------------------
    def create(self, **body):
        r = self.client.post("/v1/sandboxes", json={"profile": self.profile, "ttl": TTL, **body})
        sb = self.check(r, 201, f"create {body}")
        self.made.append(sb["id"])
        return sb["id"]

    def agent(self, sid, op=None):
        """Applies `op` (if any) in sandbox `sid` and returns the listing, in one exec."""
        body = {"cmd": ["python3", "-c", AGENT, json.dumps(op) if op else ""]}
        r = self.client.post(f"/v1/sandboxes/{sid}/exec", json=body)
        res = self.check(r, 200, f"exec in {sid}")
        if res["exit_code"] != 0:
            self.fail(f"the in-sandbox op {op and op['k']} failed in {sid}: exit {res['exit_code']}: {res['stderr'][-2000:]}")
        try:
            return json.loads(res["stdout"])
        except ValueError:
            self.fail(f"the listing is not JSON: {res['stdout'][-500:]!r} {res['stderr'][-500:]!r}")

    def compare(self, actual, model=None, where=None):
        expected = (model or self.model).expected()
        if actual != expected:
            self.fail(f"the tree of {where or self.sid} differs from the model:\n{diff(expected, actual)}")

    def verify(self, sid=None, model=None):
        self.compare(self.agent(sid or self.sid), model, sid)

    # --- choosing ops --------------------------------------------------------------------------
    def parents(self):
        return [p for p, v in self.model.tree.items() if v[0] == "d"]

    def root_of(self, p):
        return next(r for r in ROOTS if p == r or p.startswith(r + "/"))

    def absent_path(self, root=None, dirs_only_root=False):
        parents = [p for p in self.parents() if root is None or self.root_of(p) == root]
        for _ in range(20):
            parent = self.rng.choice(parents)
            p = parent + "/" + self.rng.choice(NAMES)
            if p not in self.model.tree:
                return p
        return None

    def paths(self, *kinds):
        return [p for p, v in self.model.tree.items() if v[0] in kinds and p not in ROOTS]

    def data(self, lo, hi):
        return self.rng.randbytes(self.rng.randint(lo, hi))

    def file_op(self):
        rng = self.rng
        files, links, dirs = self.paths("f"), self.paths("l"), self.paths("d")
        b64 = lambda b: base64.b64encode(b).decode()
        choices = ["write"] * 12 + ["put"] * 6 + ["symlink"] * 5 + ["mkdir"] * 2 + ["sparse"] * 4
        if files:
            choices += ["append"] * 9 + ["truncate"] * 6 + ["chmod"] * 4 + ["rename"] * 6 + ["delete"] * 6 + ["move"] * 2
            choices += ["fdelete"] * 3 + ["overwrite"] * 4
        if links:
            choices += ["rename"] * 3 + ["delete"] * 4
        if dirs:
            choices += ["rmdir"] * 3 + ["chmod"] * 1
        if len(files) + len(links) > 20:
            choices += ["delete"] * 15
        kind = rng.choice(choices)
        if kind in ("write", "put", "symlink", "mkdir", "sparse"):
            p = self.absent_path()
            if p is None:
                return None
            if kind == "write":
                return {"k": "write", "p": p, "data": b64(self.data(0, 16384)), "mode": rng.choice(FILE_MODES)}
            if kind == "put":
                return {"k": "put", "p": p, "data": b64(self.data(0, 200_000)), "mode": rng.choice(FILE_MODES)}
            if kind == "symlink":
                return {"k": "symlink", "p": p, "target": rng.choice(LINK_TARGETS)}
            if kind == "mkdir":   # one level of directories below a root
                d = rng.choice(ROOTS) + "/" + rng.choice(DIRS)
                return None if d in self.model.tree else {"k": "mkdir", "p": d, "mode": rng.choice(DIR_MODES)}
            return {"k": "sparse", "p": p, "off": rng.randint(0, 4 << 20), "data": b64(self.data(1, 4096)), "mode": rng.choice(FILE_MODES)}
        if kind == "append":
            return {"k": "append", "p": rng.choice(files), "data": b64(self.data(1, 8192))}
        if kind == "overwrite":   # an existing file, through exec or the files API (which needs it writable)
            writable = [p for p in files if self.model.tree[p][2] & 0o200]
            how = rng.choice(["write", "put"]) if writable else "write"
            return {"k": how, "p": rng.choice(writable if how == "put" else files), "data": b64(self.data(0, 16384)), "mode": rng.choice(FILE_MODES)}
        if kind == "truncate":
            p = rng.choice(files)
            size = len(self.model.tree[p][1])
            return {"k": "truncate", "p": p, "n": rng.choice([0, size // 2, size + rng.randint(1, 1 << 20)])}
        if kind == "sparse":
            return {"k": "sparse", "p": rng.choice(files), "off": rng.randint(0, 4 << 20), "data": b64(self.data(1, 4096)), "mode": rng.choice(FILE_MODES)}
        if kind == "chmod":
            pool = files if (not dirs or rng.random() < 0.7) and files else dirs
            p = rng.choice(pool)
            return {"k": "chmod", "p": p, "mode": rng.choice(DIR_MODES if self.model.kind(p) == "d" else FILE_MODES)}
        if kind in ("rename", "move"):
            src = rng.choice(files + links) if kind == "rename" else rng.choice(files)
            root = self.root_of(src)   # across roots is another filesystem (EXDEV)
            if kind == "rename" and rng.random() < 0.3:
                dsts = [p for p in files + links if self.root_of(p) == root and p != src]
                if dsts:
                    return {"k": "rename", "p": src, "to": rng.choice(dsts)}   # replaces it
            dst = self.absent_path(root)
            return {"k": kind, "p": src, "to": dst} if dst else None
        if kind == "delete":
            return {"k": "delete", "p": rng.choice(files + links)}
        if kind == "fdelete":
            return {"k": "fdelete", "p": rng.choice(files + links)}
        if kind == "rmdir":
            empty = [d for d in dirs if not any(p.startswith(d + "/") for p in self.model.tree)]
            if not empty:
                d = rng.choice(dirs)   # empty it first, one entry at a time
                return {"k": "delete", "p": next(p for p in self.model.tree if p.startswith(d + "/"))}
            return {"k": "rmdir", "p": rng.choice(empty)}
        return None

    def run_file_op(self, op):
        k = op["k"]
        short = {key: (f"<{len(base64.b64decode(v))} bytes>" if key == "data" else v) for key, v in op.items()}
        self.note(short)
        base = f"/v1/sandboxes/{self.sid}/files"
        if k == "put":
            r = self.client.put(base, params={"path": op["p"], "mode": f"{op['mode']:o}"}, content=base64.b64decode(op["data"]))
            if r.status_code not in (200, 201, 204):
                self.fail(f"PUT files {op['p']}: HTTP {r.status_code}: {r.text[:300]}")
            self.model.apply({**op, "k": "write"})
            self.verify()
        elif k == "fdelete":
            r = self.client.delete(base, params={"path": op["p"]})
            if r.status_code not in (200, 204):
                self.fail(f"DELETE files {op['p']}: HTTP {r.status_code}: {r.text[:300]}")
            self.model.apply({**op, "k": "delete"})
            self.verify()
        elif k == "move":
            r = self.client.post(base + "/move", json={"from": op["p"], "to": op["to"]})
            if r.status_code not in (200, 204):
                self.fail(f"files/move {op['p']} → {op['to']}: HTTP {r.status_code}: {r.text[:300]}")
            self.model.apply({**op, "k": "rename"})
            self.verify()
        else:
            actual = self.agent(self.sid, op)
            self.model.apply(op)
            self.compare(actual)

    # --- state ops -----------------------------------------------------------------------------
    def state(self, sid=None):
        r = self.client.get(f"/v1/sandboxes/{sid or self.sid}")
        return self.check(r, 200, "GET sandbox")["state"]

    def pause(self):
        sb = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/pause"), 200, "pause")
        if sb["state"] != "paused":
            self.fail(f"pause answered state {sb['state']}")
        explicit = self.rng.random() < 0.5
        self.note(f"pause, then {'resume' if explicit else 'an exec wakes it'}")
        if explicit:
            sb = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/resume"), 200, "resume")
            if sb["state"] != "running":
                self.fail(f"resume answered state {sb['state']}")

    def hibernate(self):
        sb = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/hibernate"), 200, "hibernate")
        if sb["state"] != "hibernated":
            self.fail(f"hibernate answered state {sb['state']}")
        explicit = self.rng.random() < 0.5
        self.note(f"hibernate, then {'resume' if explicit else 'an exec wakes it'}")
        if explicit:
            sb = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/resume"), 200, "resume")
            if sb["state"] != "running":
                self.fail(f"resume answered state {sb['state']}")

    def timeout(self):
        minutes = self.rng.randint(20, 40)
        self.note(f"timeout {minutes}m")
        before = datetime.datetime.now(datetime.timezone.utc)
        sb = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/timeout", json={"ttl": f"{minutes}m"}), 200, "timeout")
        expires = datetime.datetime.fromisoformat(sb["expires_at"].replace("Z", "+00:00"))
        want = before + datetime.timedelta(minutes=minutes)
        if not (want - datetime.timedelta(seconds=5) <= expires <= want + datetime.timedelta(minutes=1)):
            self.fail(f"timeout {minutes}m set expires_at {sb['expires_at']}, expected about {want.isoformat()}")

    def continue_on(self, keep, candidates):
        """Goes on in `keep`, deleting the other `candidates`."""
        for sid in candidates:
            if sid != keep:
                r = self.client.delete(f"/v1/sandboxes/{sid}")
                if r.status_code not in (200, 204):
                    self.fail(f"DELETE {sid}: HTTP {r.status_code}: {r.text[:300]}")
        self.note(f"continue in {keep} (of {candidates})")
        self.sid = keep

    def snapshot_restore(self):
        shot = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/snapshots"), 201, "snapshot")
        self.snapshots.append(shot["id"])
        self.note(f"snapshot {shot['id']} of {self.sid}, restore")
        at_snapshot = self.model.copy()
        # the source goes on in between: the restore must still equal the model at snapshot time
        if self.rng.random() < 0.5:
            op = self.file_op()
            if op and op["k"] not in ("put", "fdelete", "move"):
                self.run_file_op(op)
        # restored with either profile: an ephemeral sandbox's snapshot into a persistent one and back
        profile = self.rng.choice(["default", {"persistence": "persistent"}])
        restored = self.create(snapshot=shot["id"], profile=profile)
        self.note(f"restored as {restored} with profile {profile}")
        self.verify(restored, at_snapshot)
        self.verify(self.sid)
        if self.rng.random() < 0.5:
            self.continue_on(restored, [restored, self.sid])
            self.model = at_snapshot
            self.profile = profile
        else:
            self.continue_on(self.sid, [self.sid, restored])
        self.verify()

    def fork(self):
        count = self.rng.randint(1, 2)
        res = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/fork", json={"count": count}), 201, f"fork {count}")
        self.snapshots.append(res["snapshot"])
        ids = [s["id"] for s in res["sandboxes"]]
        self.made += ids
        self.note(f"fork {count} of {self.sid} → {ids}")
        for sid in ids + [self.sid]:
            self.verify(sid)
        self.continue_on(self.rng.choice([self.sid] + ids), [self.sid] + ids)

    def kill9(self):
        """kill -9 of the server with the sandbox running, paused or hibernated; restart on the same
        directories. A running one comes back running (adopted) or hibernated (persistent, processes
        gone), a paused one paused again (or running if it could not be frozen again), a hibernated
        one hibernated."""
        before = self.rng.choice(["running", "paused", "hibernated"])
        if before != "running":
            verb = "pause" if before == "paused" else "hibernate"
            sb = self.check(self.client.post(f"/v1/sandboxes/{self.sid}/{verb}"), 200, verb)
            if sb["state"] != before:
                self.fail(f"{verb} answered state {sb['state']}")
        self.note(f"kill -9 of the server with the sandbox {before}, restart")
        self.client.close()
        self.server.kill9()
        self.server.start()
        self.client = self.new_client()
        allowed = {"running": {"running", "hibernated"}, "paused": {"paused", "running", "hibernated"},
                   "hibernated": {"hibernated"}}[before]
        st = self.state()
        if st not in allowed:
            self.fail(f"the sandbox was {before} at the kill -9 and is {st} after the restart (expected one of {sorted(allowed)})")

    # --- the sequence --------------------------------------------------------------------------
    def schedule(self):
        """Which steps are state ops: per 200 steps 6 pause, 6 hibernate, 4 snapshot → restore,
        3 fork, 3 TTL extensions and 4 kill -9 + restart, at random steps."""
        per = max(1, self.steps // 200)
        kinds = (["pause"] * 6 + ["hibernate"] * 6 + ["snapshot"] * 4 + ["fork"] * 3 + ["timeout"] * 3 + ["kill9"] * 4) * per
        slots = self.rng.sample(range(5, self.steps), len(kinds))
        return dict(zip(slots, kinds))

    def go(self):
        self.sid = self.create()
        self.note(f"create {self.sid} with profile {self.profile}")
        self.compare(self.agent(self.sid, {"k": "setup"}))
        plan = self.schedule()
        for self.step in range(1, self.steps + 1):
            kind = plan.get(self.step)
            if kind:
                started = time.monotonic()
                {"pause": self.pause, "hibernate": self.hibernate, "snapshot": self.snapshot_restore,
                 "fork": self.fork, "timeout": self.timeout, "kill9": self.kill9}[kind]()
                self.verify()
                self.spent[kind] = self.spent.get(kind, 0) + time.monotonic() - started
                continue
            op = None
            while op is None:
                op = self.file_op()
            self.run_file_op(op)
        # the last deletes: everything the model holds, deepest first; the tree must be just the roots
        self.step += 1
        for p in sorted(self.model.tree, key=lambda p: -p.count("/")):
            if p in ROOTS:
                continue
            op = {"k": "rmdir" if self.model.kind(p) == "d" else "delete", "p": p}
            self.note(op)
            self.model.apply(op)
            self.agent(self.sid, op)
        self.verify()
        if set(self.model.tree) != set(ROOTS):
            self.fail(f"the model is not empty: {sorted(self.model.tree)}")

    def clean_up(self):
        for sid in self.made:
            self.client.delete(f"/v1/sandboxes/{sid}")
        for snap in self.snapshots:
            r = self.client.delete(f"/v1/snapshots/{snap}")
            if r.status_code not in (204, 404):
                self.fail(f"DELETE snapshot {snap}: HTTP {r.status_code}: {r.text[:300]}")

    def assert_nothing_left(self):
        live = self.check(self.client.get("/v1/sandboxes", params={"limit": 100}), 200, "list")["items"]
        left = [s["id"] for s in live if s["id"] in self.made and s["state"] not in ("destroyed", "lost")]
        if left:
            self.fail(f"sandboxes still listed live after delete: {left}")
        for sid in self.made:
            st = self.state(sid)
            if st != "destroyed":
                self.fail(f"{sid} is {st} after delete")
        snaps = self.check(self.client.get("/v1/snapshots"), 200, "snapshots")["snapshots"]
        if [s["id"] for s in snaps if s["id"] in self.snapshots]:
            self.fail(f"snapshots left: {snaps}")
        with open(os.path.join(self.server.data, "images", "index.json")) as f:
            index = f.read()
        if any(snap in index for snap in self.snapshots):
            self.fail(f"snapshot images left in the data directory's index.json: {index[:1000]}")
        with open("/proc/self/mountinfo") as f:
            mounts = [line for line in f if any(sid in line for sid in self.made)]
        if mounts:
            self.fail("mounts left:\n" + "".join(mounts))
        for top in ["/sys/fs/cgroup", self.server.data, self.server.state_root]:
            found = named_below(top, self.made, depth=5)
            if found:
                self.fail(f"left below {top}: {found}")


def named_below(top, ids, depth):
    """Paths under `top` (at most `depth` levels down, not following links) whose name holds one of `ids`."""
    found = []
    stack = [(top, 0)]
    while stack:
        d, level = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if any(sid in e.name for sid in ids):
                found.append(e.path)
            if level + 1 < depth and e.is_dir(follow_symlinks=False):
                stack.append((e.path, level + 1))
    return found


@pytest.mark.parametrize("seed", SEEDS)
def test_state_property(seed):
    server, key = own_server("sbx-prop-", "prop")
    run = Run(server, key, seed, STEPS)
    try:
        started = time.monotonic()
        run.go()
        run.clean_up()
        run.assert_nothing_left()
        print(f"seed {seed}: {STEPS} steps in {time.monotonic() - started:.1f} s, {len(run.made)} sandboxes, "
              f"{len(run.snapshots)} snapshots; state ops: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(run.spent.items())))
    finally:
        try:
            run.clean_up()
        except Exception:
            pass
        run.client.close()
        drop_server(server)
