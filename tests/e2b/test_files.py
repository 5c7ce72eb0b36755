"""The unmodified E2B SDK's `sandbox.files` against `sandboxer serve`: envd's filesystem service
(Connect) and its `/files` routes, sync and async, as E2B's documentation uses them."""
import asyncio
import gzip
import io
import os
import time
import uuid

import httpx
import pytest

from conftest import KEY_A, KEY_B, URL, attach, create_v1, delete_v1


def exec_v1(sandbox_id, cmd):
    """Runs a command in the sandbox through `/v1` (the test's own set-up, not the SDK under test)."""
    r = httpx.post(f"{URL}/v1/sandboxes/{sandbox_id}/exec", json={"cmd": cmd},
                   headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def events_until(handle, predicate, tries=100):
    """Polls a sync watch handle until `predicate(events so far)` holds (each poll is a call)."""
    seen = []
    for _ in range(tries):
        seen += handle.get_new_events()
        if predicate(seen):
            return seen
        time.sleep(0.1)
    return seen


def test_write_and_read_text_bytes_and_stream(sandbox):
    from e2b import FileType

    info = sandbox.files.write("notes/hello.txt", "hello from e2b\n")
    assert info.path == "/home/user/notes/hello.txt"
    assert info.name == "hello.txt"
    assert info.type == FileType.FILE
    assert sandbox.files.read("notes/hello.txt") == "hello from e2b\n"

    payload = bytes(range(256)) * 40
    sandbox.files.write("/tmp/blob.bin", payload)
    assert bytes(sandbox.files.read("/tmp/blob.bin", format="bytes")) == payload
    assert b"".join(sandbox.files.read("/tmp/blob.bin", format="stream")) == payload
    assert sandbox.files.read("notes/hello.txt", gzip=True) == "hello from e2b\n"


def test_write_many_files_in_one_multipart_upload(sandbox):
    from e2b.sandbox.filesystem.filesystem import WriteEntry

    infos = sandbox.files.write_files([
        WriteEntry(path="/home/user/many/a.txt", data="A"),
        WriteEntry(path="many/B.txt", data=b"BB"),
        WriteEntry(path="/tmp/many/c.txt", data=io.BytesIO(b"CCC")),
    ])
    assert sorted(i.path for i in infos) == ["/home/user/many/B.txt", "/home/user/many/a.txt", "/tmp/many/c.txt"]
    assert sandbox.files.read("/home/user/many/a.txt") == "A"
    assert sandbox.files.read("many/B.txt") == "BB"
    assert sandbox.files.read("/tmp/many/c.txt") == "CCC"


def test_octet_stream_and_gzip_uploads(sandbox):
    sandbox.files.write("octet.txt", "raw body", use_octet_stream=True)
    assert sandbox.files.read("octet.txt") == "raw body"
    text = "compressible line\n" * 2000
    sandbox.files.write("zipped.txt", text, gzip=True)
    assert sandbox.files.read("zipped.txt") == text


def test_files_written_as_user_are_owned_by_user(sandbox):
    sandbox.files.write("owned.txt", "x")
    info = sandbox.files.get_info("owned.txt")
    assert (info.owner, info.group) == ("user", "user")
    out = exec_v1(sandbox.sandbox_id, ["stat", "-c", "%u:%g", "/home/user/owned.txt"])
    assert out["stdout"].strip() == "1000:1000"


def test_files_as_root_act_as_the_sandboxs_root(sandbox):
    # envd's user root (the SDK's user="root"): relative paths from /root, files owned by uid 0,
    # root-only files readable and writable; the sandbox user still cannot read them.
    sandbox.files.write("root-only.txt", "for root", user="root")
    assert sandbox.files.read("/root/root-only.txt", user="root") == "for root"
    info = sandbox.files.get_info("/root/root-only.txt", user="root")
    assert (info.owner, info.group) == ("root", "root")
    assert "shadow" in [e.name for e in sandbox.files.list("/etc", user="root")]
    assert sandbox.files.read("/etc/shadow", user="root").startswith("root:")
    sandbox.files.make_dir("/opt/made-by-root", user="root")
    out = exec_v1(sandbox.sandbox_id, ["stat", "-c", "%u:%g", "/opt/made-by-root"])
    assert out["stdout"].split() == ["0:0"]
    from e2b.exceptions import SandboxException
    with pytest.raises(SandboxException):
        sandbox.files.read("/root/root-only.txt")
    with pytest.raises(SandboxException):
        sandbox.files.write("/opt/not-yours.txt", "x")


def test_get_info_reports_envd_stat_fields(sandbox):
    from e2b import FileType

    sandbox.files.write("stat/me.txt", "12345")
    info = sandbox.files.get_info("stat/me.txt")
    assert info.name == "me.txt"
    assert info.path == "/home/user/stat/me.txt"
    assert info.type == FileType.FILE
    assert info.size == 5
    assert info.mode == 0o644
    assert info.permissions == "-rw-r--r--"
    assert abs(info.modified_time.timestamp() - time.time()) < 600
    assert info.symlink_target is None

    directory = sandbox.files.get_info("stat")
    assert directory.type == FileType.DIR
    assert directory.permissions.startswith("d")

    exec_v1(sandbox.sandbox_id, ["ln", "-s", "/home/user/stat/me.txt", "/home/user/stat/link"])
    link = sandbox.files.get_info("stat/link")
    assert link.symlink_target == "/home/user/stat/me.txt"


def test_exists_make_dir_rename_remove(sandbox):
    from e2b import FileType
    from e2b.exceptions import FileNotFoundException

    assert not sandbox.files.exists("dir1")
    assert sandbox.files.make_dir("dir1/sub") is True
    assert sandbox.files.make_dir("dir1/sub") is False
    assert sandbox.files.exists("dir1/sub")

    sandbox.files.write("dir1/sub/f.txt", "f")
    moved = sandbox.files.rename("dir1/sub/f.txt", "dir2/g.txt")
    assert moved.path == "/home/user/dir2/g.txt"
    assert moved.type == FileType.FILE
    assert not sandbox.files.exists("dir1/sub/f.txt")
    assert sandbox.files.read("dir2/g.txt") == "f"

    sandbox.files.remove("dir1")
    assert not sandbox.files.exists("dir1")
    sandbox.files.remove("dir1")  # as envd's RemoveAll: what is not there is removed already
    with pytest.raises(FileNotFoundException):
        sandbox.files.read("dir1/sub/f.txt")
    with pytest.raises(FileNotFoundException):
        sandbox.files.get_info("dir1")


def test_list_with_depth(sandbox):
    from e2b import FileType

    for p in ["tree/a.txt", "tree/sub/b.txt", "tree/sub/deeper/c.txt"]:
        sandbox.files.write(p, "x")
    one = sandbox.files.list("tree")
    assert [(e.name, e.type) for e in one] == [("a.txt", FileType.FILE), ("sub", FileType.DIR)]
    two = sandbox.files.list("tree", depth=2)
    assert [e.path for e in two] == ["/home/user/tree/a.txt", "/home/user/tree/sub", "/home/user/tree/sub/b.txt",
                                     "/home/user/tree/sub/deeper"]
    assert all(e.owner == "user" for e in two)


def test_metadata_round_trip(sandbox):
    info = sandbox.files.write("meta.txt", "m", metadata={"Purpose": "report", "run-id": "42"})
    assert info.metadata == {"purpose": "report", "run-id": "42"}
    assert sandbox.files.get_info("meta.txt").metadata == {"purpose": "report", "run-id": "42"}
    listed = {e.name: e for e in sandbox.files.list(".")}
    assert listed["meta.txt"].metadata == {"purpose": "report", "run-id": "42"}
    sandbox.files.write("plain.txt", "p")
    assert sandbox.files.get_info("plain.txt").metadata is None


def test_watch_dir_by_polling(sandbox):
    from e2b import FilesystemEventType

    sandbox.files.make_dir("watched")
    handle = sandbox.files.watch_dir("watched")
    try:
        sandbox.files.write("watched/new.txt", "content")
        seen = events_until(handle, lambda ev: any(e.name == "new.txt" and e.type == FilesystemEventType.WRITE for e in ev))
        assert any(e.name == "new.txt" and e.type == FilesystemEventType.CREATE for e in seen), seen
        assert any(e.name == "new.txt" and e.type == FilesystemEventType.WRITE for e in seen), seen

        sandbox.files.rename("watched/new.txt", "watched/renamed.txt")
        seen = events_until(handle, lambda ev: any(e.name == "renamed.txt" for e in ev))
        assert any(e.name == "new.txt" and e.type == FilesystemEventType.RENAME for e in seen), seen
        assert any(e.name == "renamed.txt" and e.type == FilesystemEventType.CREATE for e in seen), seen

        sandbox.files.remove("watched/renamed.txt")
        seen = events_until(handle, lambda ev: any(e.type == FilesystemEventType.REMOVE for e in ev))
        assert [(e.name, e.type) for e in seen] == [("renamed.txt", FilesystemEventType.REMOVE)]

        # inotify, not a comparison of listings: a file that lives between two polls is seen too.
        exec_v1(sandbox.sandbox_id, ["sh", "-c", "echo a > /home/user/watched/brief && rm /home/user/watched/brief"])
        seen = events_until(handle, lambda ev: any(e.type == FilesystemEventType.REMOVE for e in ev))
        assert [(e.name, e.type) for e in seen] == [("brief", FilesystemEventType.CREATE), ("brief", FilesystemEventType.WRITE),
                                                    ("brief", FilesystemEventType.REMOVE)]
    finally:
        handle.stop()


def test_recursive_watch_names_paths_below_the_directory(sandbox):
    from e2b import FilesystemEventType

    sandbox.files.make_dir("rw/inner")
    handle = sandbox.files.watch_dir("rw", recursive=True)
    try:
        sandbox.files.write("rw/inner/deep.txt", "d")
        seen = events_until(handle, lambda ev: any(e.name == "inner/deep.txt" for e in ev))
        assert any(e.name == "inner/deep.txt" and e.type == FilesystemEventType.CREATE for e in seen), seen
    finally:
        handle.stop()


def test_async_sdk_files_and_watch_stream():
    from e2b import AsyncSandbox, FilesystemEventType

    async def scenario(sbx):
        from e2b import FileType
        from e2b.sandbox.filesystem.filesystem import WriteEntry

        await sbx.files.write("async/one.txt", "1")
        assert await sbx.files.read("async/one.txt") == "1"
        assert [e.name for e in await sbx.files.list("async")] == ["one.txt"]
        assert await sbx.files.exists("async/one.txt")
        blob = os.urandom(70_000)
        infos = await sbx.files.write_files([WriteEntry(path="async/b.bin", data=blob), WriteEntry(path="/tmp/a2.txt", data="x")])
        assert sorted(i.path for i in infos) == ["/home/user/async/b.bin", "/tmp/a2.txt"]
        assert bytes(await sbx.files.read("async/b.bin", format="bytes")) == blob
        chunks = [c async for c in await sbx.files.read("async/b.bin", format="stream")]
        assert b"".join(chunks) == blob
        info = await sbx.files.get_info("async/b.bin")
        assert (info.size, info.type, info.owner) == (70_000, FileType.FILE, "user")
        assert await sbx.files.make_dir("async/sub") is True
        moved = await sbx.files.rename("async/b.bin", "async/sub/c.bin")
        assert moved.path == "/home/user/async/sub/c.bin"
        assert [e.path for e in await sbx.files.list("async", depth=2)] == [
            "/home/user/async/one.txt", "/home/user/async/sub", "/home/user/async/sub/c.bin"]

        events = []
        got = asyncio.Event()

        def on_event(e):
            events.append(e)
            if e.name == "two.txt" and e.type == FilesystemEventType.WRITE:
                got.set()

        handle = await sbx.files.watch_dir("async", on_event)
        try:
            await sbx.files.write("async/two.txt", "22")
            await asyncio.wait_for(got.wait(), timeout=30)
        finally:
            await handle.stop()
        assert any(e.name == "two.txt" and e.type == FilesystemEventType.CREATE for e in events), events
        await sbx.files.remove("async/two.txt")
        assert not await sbx.files.exists("async/two.txt")

    sandbox_id = create_v1(KEY_A)
    try:
        asyncio.run(scenario(attach(AsyncSandbox, sandbox_id, KEY_A)))
    finally:
        delete_v1(KEY_A, sandbox_id)


def test_paths_outside_the_sandbox_view_are_refused_and_leak_nothing(sandbox, tmp_path):
    from e2b.exceptions import SandboxException

    marker = f"host-secret-{uuid.uuid4().hex}"
    host_file = f"/tmp/{marker}"
    with open(host_file, "w") as f:
        f.write(marker)
    try:
        # `..` resolves inside the sandbox's own root: the host's /tmp is not there.
        with pytest.raises(SandboxException) as e:
            sandbox.files.read(f"../../../../../../tmp/{marker}")
        assert marker not in str(e.value).replace(f"/tmp/{marker}", "")
        # The sandbox's own /etc/shadow is root's: the sandbox user cannot read it.
        with pytest.raises(SandboxException):
            sandbox.files.read("../../etc/shadow")
        # A symlink into the agent's /proc/1/root is refused, for reads, listings and stats alike.
        exec_v1(sandbox.sandbox_id, ["ln", "-s", "/proc/1/root", "/home/user/escape"])
        with pytest.raises(SandboxException) as e:
            sandbox.files.read("escape/etc/hostname")
        assert "proc" in str(e.value)
        with pytest.raises(SandboxException):
            sandbox.files.list("escape")
        with pytest.raises(SandboxException):
            sandbox.files.write("escape/tmp/planted.txt", "x")
        assert not os.path.exists("/tmp/planted.txt")
    finally:
        os.unlink(host_file)


def test_raw_envd_http_routes(sandbox):
    headers = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": KEY_A}
    assert httpx.get(f"{URL}/health", headers=headers).status_code == 204
    envs = httpx.get(f"{URL}/envs", headers=headers)
    assert envs.status_code == 200 and isinstance(envs.json(), dict)

    text = b"zipped upload, " * 500
    r = httpx.post(f"{URL}/files", params={"path": "/tmp/z.txt"}, content=gzip.compress(text),
                   headers={**headers, "Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json() == [{"name": "z.txt", "type": "file", "path": "/tmp/z.txt"}]
    with httpx.stream("GET", f"{URL}/files", params={"path": "/tmp/z.txt"}, headers={**headers, "Accept-Encoding": "gzip"}) as down:
        assert down.headers["content-encoding"] == "gzip"
        wire = b"".join(down.iter_raw())
    assert len(wire) < len(text) // 10 and gzip.decompress(wire) == text
    # Random bytes do not shrink: they go as they are.
    noise = os.urandom(4096)
    httpx.post(f"{URL}/files", params={"path": "/tmp/noise"}, content=noise,
               headers={**headers, "Content-Type": "application/octet-stream"}).raise_for_status()
    plain = httpx.get(f"{URL}/files", params={"path": "/tmp/noise"}, headers={**headers, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and plain.content == noise

    missing = httpx.get(f"{URL}/files", params={"path": "/nope"}, headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == 404 and "nope" in missing.json()["message"]
    onto_dir = httpx.post(f"{URL}/files", params={"path": "/tmp"}, content=b"x", headers={**headers, "Content-Type": "application/octet-stream"})
    assert onto_dir.status_code == 400 and "directory" in onto_dir.json()["message"]
    bad = httpx.post(f"{URL}/files", params={"path": "/tmp/x"}, content=b"x", headers={**headers, "Content-Type": "text/plain"})
    assert bad.status_code == 400
    bomb = httpx.post(f"{URL}/files", params={"path": "/tmp/y"}, content=b"\x1f\x8bnot gzip at all",
                      headers={**headers, "Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    assert bomb.status_code == 400 and "gzip" in bomb.json()["message"]


def test_a_killed_sandbox_answers_as_gone(sandbox):
    delete_v1(KEY_A, sandbox.sandbox_id)
    headers = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": KEY_A}
    r = httpx.get(f"{URL}/health", headers=headers)
    assert r.status_code == 502 and "was not found" in r.text


def test_killing_the_sandbox_ends_an_open_watch_stream():
    from e2b import AsyncSandbox

    async def scenario(sbx, sandbox_id):
        ended = asyncio.Event()
        outcome = []

        def on_exit(error):
            outcome.append(error)
            ended.set()

        seen = asyncio.Event()
        await sbx.files.make_dir("w")
        handle = await sbx.files.watch_dir("w", lambda e: seen.set(), on_exit=on_exit)
        try:
            await sbx.files.write("w/x.txt", "x")
            await asyncio.wait_for(seen.wait(), timeout=30)
            assert not ended.is_set(), "the stream is open while the sandbox lives"
            await asyncio.to_thread(delete_v1, KEY_A, sandbox_id)
            await asyncio.wait_for(ended.wait(), timeout=30)
        finally:
            await handle.stop()
        assert len(outcome) == 1

    sandbox_id = create_v1(KEY_A)
    try:
        asyncio.run(scenario(attach(AsyncSandbox, sandbox_id, KEY_A), sandbox_id))
    finally:
        delete_v1(KEY_A, sandbox_id)


def test_stopped_watchers_free_their_watches(sandbox):
    # More than the agent keeps at once (64) and the API's 16 per sandbox: each stop frees its watch.
    sandbox.files.make_dir("many-watches")
    for _ in range(70):
        sandbox.files.watch_dir("many-watches").stop()
    handles = [sandbox.files.watch_dir("many-watches") for _ in range(16)]
    from e2b.exceptions import RateLimitException
    with pytest.raises(RateLimitException, match="16 watchers"):
        sandbox.files.watch_dir("many-watches")
    for h in handles:
        h.stop()


def test_file_calls_land_in_the_sandboxs_audit_trail(sandbox):
    import json

    sandbox.files.write("aud.txt", "a", metadata={"k": "v"})
    sandbox.files.read("aud.txt")
    sandbox.files.rename("aud.txt", "aud2.txt")
    sandbox.files.make_dir("aud-dir")
    sandbox.files.remove("aud2.txt")
    r = httpx.get(f"{URL}/v1/sandboxes/{sandbox.sandbox_id}/audit", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30)
    assert r.status_code == 200, r.text
    entries = [json.loads(line) for line in r.text.splitlines() if line]
    seen = [(e["kind"], e["detail"].get("path") or e["detail"].get("to")) for e in entries if e["kind"].startswith("file.")]
    for expected in [("file.write", "/home/user/aud.txt"), ("file.read", "/home/user/aud.txt"), ("file.move", "/home/user/aud2.txt"),
                     ("file.mkdir", "/home/user/aud-dir"), ("file.remove", "/home/user/aud2.txt")]:
        assert expected in seen, (expected, seen)


def test_another_tenants_key_reaches_neither_files_nor_watches(sandbox):
    sandbox.files.write("/tmp/private.txt", "tenant a only")
    other = attach(type(sandbox), sandbox.sandbox_id, KEY_B)
    headers = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": KEY_B}
    r = httpx.get(f"{URL}/files", params={"path": "/tmp/private.txt"}, headers=headers)
    assert r.status_code == 502 and "was not found" in r.text and "tenant a only" not in r.text
    r = httpx.post(f"{URL}/filesystem.Filesystem/ListDir", json={"path": "/tmp"}, headers=headers)
    assert r.status_code == 502 and "private" not in r.text
    from e2b.exceptions import SandboxException
    with pytest.raises(SandboxException):
        other.files.watch_dir("/tmp")
