"""Files: raw and multipart upload, download, list, mkdir, move, delete, size caps, path attacks."""
import os
import uuid

import pytest

from conftest import assert_problem, create_sandbox, exec_


def files(sid):
    return f"/v1/sandboxes/{sid}/files"


def test_put_get_roundtrip_text_and_binary(client, shared_sandbox):
    sid = shared_sandbox["id"]
    for name, data in [("hello.txt", b"hello, world\n"), ("blob.bin", bytes(range(256)) * 64 + b"\x00\xff"), ("empty", b"")]:
        path = f"/workspace/rt/{name}"
        r = client.put(files(sid), params={"path": path}, content=data)  # curl -T style
        assert r.status_code == 201, r.text
        entry = r.json()
        assert entry["path"] == path and entry["name"] == name and entry["type"] == "file", entry
        assert entry["size"] == len(data)
        g = client.get(files(sid), params={"path": path})
        assert g.status_code == 200, g.text
        assert g.headers["content-type"].startswith("application/octet-stream")
        assert g.content == data
    # the sandbox sees the same bytes
    res = exec_(client, sid, cmd=["sha256sum", "/workspace/rt/blob.bin"])
    import hashlib
    assert res["stdout"].split()[0] == hashlib.sha256(bytes(range(256)) * 64 + b"\x00\xff").hexdigest()


def test_put_mode_and_list(client, shared_sandbox):
    sid = shared_sandbox["id"]
    r = client.put(files(sid), params={"path": "/workspace/ls/run.sh", "mode": "755"}, content=b"#!/bin/sh\necho ran\n")
    assert r.status_code == 201, r.text
    assert r.json()["mode"] == 0o755, r.json()
    client.put(files(sid), params={"path": "/workspace/ls/data.csv"}, content=b"a,b\n1,2\n")
    assert exec_(client, sid, cmd=["/workspace/ls/run.sh"])["stdout"] == "ran\n"
    r = client.get(f"/v1/sandboxes/{sid}/files/list", params={"path": "/workspace/ls"})
    assert r.status_code == 200, r.text
    items = {e["name"]: e for e in r.json()["items"]}
    assert set(items) == {"run.sh", "data.csv"}, items
    for e in items.values():
        assert {"name", "path", "type", "size", "mode", "mtime"} <= e.keys(), e
        assert e["type"] == "file"
        assert e["mtime"] > 1.6e9
    assert items["data.csv"]["size"] == 8 and items["data.csv"]["mode"] == 0o644
    assert items["run.sh"]["mode"] == 0o755
    # default listing is /workspace
    r = client.get(f"/v1/sandboxes/{sid}/files/list")
    assert r.status_code == 200 and any(e["name"] == "ls" and e["type"] == "directory" for e in r.json()["items"]), r.text
    assert_problem(client.put(files(sid), params={"path": "/workspace/x", "mode": "999"}, content=b"x"), 400, "invalid_request")
    assert_problem(client.get(f"/v1/sandboxes/{sid}/files/list", params={"path": "/workspace/ls/nope"}), 404, "not_found")


def test_mkdir_move_delete(client, shared_sandbox):
    sid = shared_sandbox["id"]
    r = client.post(f"/v1/sandboxes/{sid}/files/mkdir", json={"path": "/workspace/mk/a/b", "parents": True})
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "directory"
    # without parents, an existing directory or a missing parent is an error
    r = client.post(f"/v1/sandboxes/{sid}/files/mkdir", json={"path": "/workspace/mk/x/y"})
    assert r.status_code in (400, 404, 409), r.text
    r = client.post(f"/v1/sandboxes/{sid}/files/mkdir", json={"path": "/workspace/mk/a/b", "parents": True})
    assert r.status_code == 201, r.text

    client.put(files(sid), params={"path": "/workspace/mk/a/b/f.txt"}, content=b"move me")
    r = client.post(f"/v1/sandboxes/{sid}/files/move", json={"from": "/workspace/mk/a/b/f.txt", "to": "/workspace/mk/g.txt"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/workspace/mk/g.txt" and r.json()["size"] == 7
    assert client.get(files(sid), params={"path": "/workspace/mk/g.txt"}).content == b"move me"
    assert_problem(client.get(files(sid), params={"path": "/workspace/mk/a/b/f.txt"}), 404, "not_found")
    assert_problem(client.post(f"/v1/sandboxes/{sid}/files/move", json={"from": "/workspace/mk/none", "to": "/workspace/mk/z"}), 404, "not_found")

    r = client.delete(files(sid), params={"path": "/workspace/mk/g.txt"})
    assert r.status_code == 204, r.text
    assert_problem(client.get(files(sid), params={"path": "/workspace/mk/g.txt"}), 404, "not_found")
    # a non-empty directory needs recursive
    r = client.delete(files(sid), params={"path": "/workspace/mk"})
    assert r.status_code in (400, 409), r.text
    r = client.delete(files(sid), params={"path": "/workspace/mk", "recursive": "true"})
    assert r.status_code == 204, r.text
    assert exec_(client, sid, cmd=["sh", "-c", "test -e /workspace/mk && echo yes || echo no"])["stdout"] == "no\n"
    assert_problem(client.delete(files(sid), params={"path": "/workspace/mk"}), 404, "not_found")


def test_multipart_upload(client, shared_sandbox):
    sid = shared_sandbox["id"]
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(3000) + b"\r\n--notaboundary\r\n"
    r = client.put(files(sid), params={"path": "/workspace/up/img.png"},
                   files={"file": ("img.png", data, "image/png")}, data={"note": "ignored"})
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(data)
    assert client.get(files(sid), params={"path": "/workspace/up/img.png"}).content == data


def test_missing_or_relative_path(client, shared_sandbox):
    sid = shared_sandbox["id"]
    body = assert_problem(client.get(files(sid)), 400, "invalid_request")
    assert body.get("field") == "path"
    assert_problem(client.get(files(sid), params={"path": "workspace/x"}), 400, "invalid_request")
    assert_problem(client.get(files(sid), params={"path": "/workspace/does-not-exist"}), 404, "not_found")


def test_upload_over_cap_is_413(client):
    sb = create_sandbox(client, profile={"extends": "default", "resources": {"workspace": "1M"}})
    try:
        sid = sb["id"]
        assert sb["limits"]["workspace_bytes"] == 1 << 20, sb["limits"]
        # with a Content-Length
        r = client.put(files(sid), params={"path": "/workspace/big"}, content=b"x" * ((1 << 20) + 1))
        body = assert_problem(r, 413, "limit_exceeded")
        assert body["name"] == "workspace_bytes", body
        assert body["limit"] == 1 << 20 and body["actual"] > 1 << 20, body
        assert "workspace_bytes" in body["detail"]
        # chunked (no Content-Length)
        def gen():
            for _ in range(40):
                yield b"y" * 65536
        r = client.put(files(sid), params={"path": "/workspace/big2"}, content=gen())
        body = assert_problem(r, 413, "limit_exceeded")
        assert body["name"] == "workspace_bytes", body
        # nothing was left behind, and a file under the cap still fits
        assert_problem(client.get(files(sid), params={"path": "/workspace/big"}), 404, "not_found")
        r = client.put(files(sid), params={"path": "/workspace/small"}, content=b"z" * 1000)
        assert r.status_code == 201, r.text
    finally:
        client.delete(f"/v1/sandboxes/{sb['id']}")


def host_shadow():
    with open("/etc/shadow", "rb") as f:
        return f.read()


def test_path_traversal_never_reaches_host(client, shared_sandbox):
    sid = shared_sandbox["id"]
    shadow = host_shadow()
    assert shadow, "the host's /etc/shadow is empty: the comparison would prove nothing"
    for path in ["/etc/shadow", "/workspace/../etc/shadow", "/workspace/../../../../../../etc/shadow",
                 "/../../../../etc/shadow", "/workspace/./../../etc/shadow"]:
        r = client.get(files(sid), params={"path": path})
        assert r.status_code < 500, (path, r.status_code, r.text)
        assert r.content != shadow, path
        if r.status_code != 200:
            assert_problem(r, r.status_code)
    # writing through .. lands in the sandbox (or is refused), never on the host
    marker = f"sandboxer-escape-{uuid.uuid4().hex}"
    for path in [f"/workspace/../../../../tmp/{marker}", f"/../../../../tmp/{marker}"]:
        r = client.put(files(sid), params={"path": path}, content=b"escaped")
        assert r.status_code < 500, (path, r.status_code, r.text)
        assert not os.path.exists(f"/tmp/{marker}"), "a file was written on the host"


def test_nul_and_path_max(client, shared_sandbox):
    sid = shared_sandbox["id"]
    # %00 in the query string
    r = client.get(files(sid) + "?path=/workspace/a%00b")
    assert_problem(r, 400, "invalid_request")
    r = client.put(files(sid) + "?path=/workspace/a%00/etc/shadow", content=b"x")
    assert_problem(r, 400, "invalid_request")
    r = client.get(f"/v1/sandboxes/{sid}/files/list?path=/workspace%00/..")
    assert_problem(r, 400, "invalid_request")
    long = "/workspace/" + "a" * 5000
    for r in (client.get(files(sid), params={"path": long}),
              client.put(files(sid), params={"path": long}, content=b"x"),
              client.put(files(sid), params={"path": "/workspace/" + "/".join(["d" * 200] * 30)}, content=b"x")):
        assert r.status_code in (400, 404, 413, 414), (r.status_code, r.text[:300])
        assert_problem(r, r.status_code)


def test_symlinks_inside_do_not_leak_host_files(client, sandbox):
    sid = sandbox["id"]
    shadow = host_shadow()
    marker_name = f".sandboxer-api-test-{uuid.uuid4().hex}"
    marker_path = f"/root/{marker_name}"
    secret = os.urandom(32).hex().encode()
    with open(marker_path, "wb") as f:
        f.write(secret)
    try:
        res = exec_(client, sid, cmd=["sh", "-c", "ln -s /etc/shadow /workspace/shadow && ln -s /root /workspace/rootdir "
                                     "&& ln -s ../../../../../../root /workspace/rel && ln -s / /workspace/slash && echo ok"])
        assert res["stdout"] == "ok\n", res
        for path in ["/workspace/shadow", "/workspace/slash/etc/shadow"]:
            r = client.get(files(sid), params={"path": path})
            assert r.status_code < 500, (path, r.status_code, r.text)
            assert r.content != shadow, f"{path}: the host's /etc/shadow was returned"
            if r.status_code != 200:
                assert_problem(r, r.status_code)
        for path in [f"/workspace/rootdir/{marker_name}", f"/workspace/rel/{marker_name}", f"/workspace/slash/root/{marker_name}", marker_path]:
            r = client.get(files(sid), params={"path": path})
            assert r.status_code < 500, (path, r.status_code, r.text)
            assert secret not in r.content, f"{path}: a host file under /root was returned"
        for path in ["/workspace/rootdir", "/workspace/rel", "/root"]:
            r = client.get(f"/v1/sandboxes/{sid}/files/list", params={"path": path})
            assert r.status_code < 500, (path, r.status_code, r.text)
            if r.status_code == 200:
                assert marker_name not in [e["name"] for e in r.json()["items"]], f"{path}: the host's /root was listed"
        # writes through the links never land on the host
        for path in [f"/workspace/rootdir/{marker_name}", f"/workspace/rootdir/{marker_name}.new", f"/workspace/slash/root/{marker_name}.new2"]:
            r = client.put(files(sid), params={"path": path}, content=b"overwritten")
            assert r.status_code < 500, (path, r.status_code, r.text)
        r = client.post(f"/v1/sandboxes/{sid}/files/move", json={"from": "/workspace/shadow", "to": "/workspace/rootdir/moved"})
        assert r.status_code < 500, r.text
        r = client.delete(files(sid), params={"path": f"/workspace/rootdir/{marker_name}"})
        assert r.status_code < 500, r.text
        with open(marker_path, "rb") as f:
            assert f.read() == secret, "the host file was changed"
        assert not os.path.exists(marker_path + ".new") and not os.path.exists(marker_path + ".new2")
        assert not os.path.exists("/root/moved")
        assert host_shadow() == shadow
    finally:
        for p in (marker_path, marker_path + ".new", marker_path + ".new2"):
            if os.path.exists(p):
                os.remove(p)


def test_files_of_unknown_sandbox(client):
    assert_problem(client.get(files("sbx-nope"), params={"path": "/workspace/x"}), 404, "not_found")
    assert_problem(client.put(files("sbx-nope"), params={"path": "/workspace/x"}, content=b"x"), 404, "not_found")


# ---------------------------------------------------------------------------------------------
# Hardening: a full disk, a refused write, multipart abuse and the agent's own /proc


def assert_alive(client, sid):
    assert client.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"
    assert exec_(client, sid, cmd=["echo", "alive"])["stdout"] == "alive\n"


def test_an_upload_that_fills_the_disk_is_507_and_the_sandbox_lives(client):
    sb = create_sandbox(client)
    sid = sb["id"]
    try:
        # 100 MB into the 64 MiB /tmp: the agent's write hits ENOSPC half way.
        r = client.put(files(sid), params={"path": "/tmp/big"}, content=b"x" * (100 << 20), timeout=120)
        body = assert_problem(r, 507, "insufficient_storage")
        assert "full" in body["detail"], body
        assert_alive(client, sid)
        # The space the failed upload took is given back.
        assert exec_(client, sid, cmd=["sh", "-c", "stat -c %s /tmp/big"])["stdout"] == "0\n"
        # Hostile code fills the disk first; the tenant's next upload is refused, the sandbox stays.
        exec_(client, sid, cmd=["sh", "-c", "cat /dev/zero > /tmp/fill; true"])
        r = client.put(files(sid), params={"path": "/tmp/after"}, content=b"y" * (1 << 20))
        assert_problem(r, 507, "insufficient_storage")
        assert_alive(client, sid)
        exec_(client, sid, cmd=["rm", "-f", "/tmp/fill"])
        assert client.put(files(sid), params={"path": "/tmp/after"}, content=b"y" * (1 << 20)).status_code == 201
    finally:
        client.delete(f"/v1/sandboxes/{sid}")


def test_a_refused_write_with_a_large_body_does_not_kill_the_sandbox(client, shared_sandbox):
    sid = shared_sandbox["id"]
    exec_(client, sid, cmd=["mkdir", "-p", "/workspace/a-dir"])
    # The agent refuses the open (a directory is there) while the body is still arriving.
    r = client.put(files(sid), params={"path": "/workspace/a-dir"}, content=os.urandom(8 << 20), timeout=60)
    assert r.status_code in (400, 409), r.text
    assert_alive(client, sid)


def test_the_agents_own_proc_files_are_refused(client, shared_sandbox):
    sid = shared_sandbox["id"]
    for path in ["/proc/1/maps", "/proc/1/environ", "/proc/self/status", "/proc/1/smaps"]:
        body = assert_problem(client.get(files(sid), params={"path": path}), 400, "invalid_request")
        assert "/proc" in body["detail"], body
    assert_problem(client.get(f"/v1/sandboxes/{sid}/files/list", params={"path": "/proc/1/fd"}), 400, "invalid_request")
    # A symlink planted by sandbox code does not get around it.
    exec_(client, sid, cmd=["ln", "-sf", "/proc/1/maps", "/workspace/maps-link"])
    assert_problem(client.get(files(sid), params={"path": "/workspace/maps-link"}), 400, "invalid_request")
    # Writes there are refused too.
    r = client.put(files(sid), params={"path": "/proc/1/comm"}, content=b"x")
    assert r.status_code in (400, 403, 409), r.text
    assert_alive(client, sid)


def test_a_multipart_boundary_over_70_characters_is_refused(client, shared_sandbox):
    sid = shared_sandbox["id"]
    boundary = "b" * 8000
    body = (f"--{boundary}\r\n" + "Content-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n").encode() \
        + (b"--" + b"b" * 7999 + b"\r\n") * 128 + f"\r\n--{boundary}--\r\n".encode()
    r = client.put(files(sid), params={"path": "/workspace/mp"}, content=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    problem = assert_problem(r, 400, "invalid_request")
    assert "boundary" in problem["detail"] and "70" in problem["detail"], problem


def test_a_near_miss_multipart_body_parses_in_one_pass(client, shared_sandbox):
    sid = shared_sandbox["id"]
    boundary = "B" * 70
    near = b"\r\n--" + b"B" * 69 + b"x"  # every line almost the boundary
    content = near * ((1 << 20) // len(near))
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n\"\r\n\r\n").encode() \
        + content + f"\r\n--{boundary}--\r\n".encode()
    r = client.put(files(sid), params={"path": "/workspace/near"}, content=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["size"] == len(content)


def test_too_many_multipart_parts_are_refused(client, shared_sandbox):
    sid = shared_sandbox["id"]
    boundary = "xyz"
    part = f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n"
    body = (part * 1000 + f"--{boundary}--\r\n").encode()
    r = client.put(files(sid), params={"path": "/workspace/parts"}, content=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    problem = assert_problem(r, 400, "invalid_request")
    assert "parts" in problem["detail"], problem
