"""envd's process service as the unmodified E2B SDK drives it: `sandbox.commands` and
`sandbox.pty` (sync and async), plus raw Connect calls for what the SDK never sends (a malformed
envelope, client-streamed input, tags)."""
import base64
import io
import json
import os
import struct
import tarfile

import httpx
import pytest
import pytest_asyncio

from conftest import KEY_A, URL, attach, create_v1, delete_v1

from e2b import AsyncSandbox, CommandExitException, NotFoundException, SandboxException, TimeoutException
from e2b.sandbox.commands.command_handle import PtySize


@pytest_asyncio.fixture
async def async_sandbox():
    """A fresh sandbox of tenant A as the async SDK's `AsyncSandbox`; deleted after the test."""
    sandbox_id = create_v1(KEY_A)
    try:
        yield attach(AsyncSandbox, sandbox_id, KEY_A)
    finally:
        delete_v1(KEY_A, sandbox_id)


def plane_headers(sandbox_id, content_type):
    return {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": KEY_A,
            "Content-Type": content_type, "Connect-Protocol-Version": "1"}


def envelope(message, flags=0):
    payload = json.dumps(message).encode()
    return struct.pack(">BI", flags, len(payload)) + payload


def read_envelopes(body):
    """The (flags, message) pairs of a Connect stream's body."""
    out = []
    while body:
        flags, length = struct.unpack(">BI", body[:5])
        out.append((flags, json.loads(body[5:5 + length])))
        body = body[5 + length:]
    return out


# MARK: commands.run


def test_run_returns_stdout_stderr_and_exit_code_zero(sandbox):
    result = sandbox.commands.run("echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 0
    assert result.error is None


def test_a_nonzero_exit_raises_with_its_code_and_stderr(sandbox):
    with pytest.raises(CommandExitException) as e:
        sandbox.commands.run("echo partial; echo broken >&2; exit 3")
    assert e.value.exit_code == 3
    assert e.value.stdout == "partial\n"
    assert e.value.stderr == "broken\n"
    assert e.value.error == "exit status 3"


def test_envs_reach_the_command_through_a_login_shell(sandbox):
    result = sandbox.commands.run('echo "$GREETING/$OTHER"; shopt -q login_shell && echo login',
                                  envs={"GREETING": "hello world", "OTHER": "x=y"})
    assert result.stdout == "hello world/x=y\nlogin\n"


def test_the_default_user_is_user_in_home_user(sandbox):
    result = sandbox.commands.run("whoami; pwd; echo $HOME; id -u; touch ~/mine && stat -c %U ~/mine")
    assert result.stdout == "user\n/home/user\n/home/user\n1000\nuser\n"


def test_user_root_runs_as_root_of_the_sandbox_without_capabilities(sandbox):
    result = sandbox.commands.run("whoami; pwd; grep CapEff /proc/self/status", user="root")
    lines = result.stdout.splitlines()
    assert lines[:2] == ["root", "/root"]
    assert lines[2].split() == ["CapEff:", "0000000000000000"]


def test_a_template_without_the_users_home_gets_it_at_start():
    """A template whose `user` has no home directory: the sandbox's agent creates /home/user, owned
    by the user, before anything runs (E2B's commands start there)."""
    from e2b import Sandbox

    name = f"nohome-{os.getpid()}"
    dockerfile = b"FROM debian\nRUN userdel -r user && useradd --no-create-home -u 1000 -s /bin/bash user && test ! -e /home/user\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    auth = {"Authorization": f"Bearer {KEY_A}"}
    r = httpx.post(f"{URL}/v1/templates", params={"name": name}, content=context.getvalue(), timeout=300,
                   headers=auth | {"Content-Type": "application/x-tar"})
    assert r.status_code == 202, r.text
    build = r.json()["id"]
    httpx.get(f"{URL}/v1/templates/builds/{build}/logs", headers=auth, timeout=600)  # ends with the build
    assert httpx.get(f"{URL}/v1/templates/builds/{build}", headers=auth, timeout=30).json()["state"] == "succeeded"
    sandbox_id = create_v1(KEY_A, {"profile": {"template": name}})
    try:
        sandbox = attach(Sandbox, sandbox_id, KEY_A)
        result = sandbox.commands.run("pwd; stat -c '%U %G' ~; touch ~/mine && echo writable")
        assert result.stdout == "/home/user\nuser user\nwritable\n"
    finally:
        delete_v1(KEY_A, sandbox_id)
        httpx.delete(f"{URL}/v1/templates/{name}", headers=auth, timeout=60)


def test_cwd_is_where_the_command_runs(sandbox):
    assert sandbox.commands.run("pwd", cwd="/tmp").stdout == "/tmp\n"
    sandbox.commands.run("mkdir -p ~/project")
    assert sandbox.commands.run("pwd", cwd="project").stdout == "/home/user/project\n"


def test_a_missing_cwd_fails_the_start_with_a_message(sandbox):
    with pytest.raises(SandboxException) as e:
        sandbox.commands.run("pwd", cwd="/does/not/exist")
    assert "chdir /does/not/exist" in str(e.value)


def test_output_streams_to_callbacks_while_the_command_runs(sandbox):
    # The command waits for stdin after its first line: the line must arrive before it ends.
    handle = sandbox.commands.run("echo ready; echo warn >&2; read line; echo got $line", background=True, stdin=True)
    seen_out, seen_err = [], []
    for stdout, stderr, _ in handle:
        if stdout:
            seen_out.append(stdout)
            if "ready" in "".join(seen_out) and len(seen_out) == 1:
                handle.send_stdin("banana\n")
        if stderr:
            seen_err.append(stderr)
    assert "".join(seen_out) == "ready\ngot banana\n"
    assert "".join(seen_err) == "warn\n"


def test_on_stdout_and_on_stderr_callbacks_receive_the_output(sandbox):
    out, err = [], []
    result = sandbox.commands.run("for i in 1 2 3; do echo o$i; echo e$i >&2; done",
                                  on_stdout=out.append, on_stderr=err.append)
    assert "".join(out) == result.stdout == "o1\no2\no3\n"
    assert "".join(err) == result.stderr == "e1\ne2\ne3\n"


def test_commands_land_in_the_audit_trail_as_e2b_calls(sandbox):
    sandbox.commands.run("echo audited", envs={"MARK": "m1"})
    # Followed until the entry arrives (the trail is written behind the call).
    with httpx.stream("GET", f"{URL}/v1/sandboxes/{sandbox.sandbox_id}/audit", params={"follow": "true"},
                      headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            event = json.loads(line)
            if event["kind"] == "exec.start" and "echo audited" in json.dumps(event["detail"]):
                break
    assert event["actor"] == "e2b"
    assert event["detail"]["process"] is True


# MARK: background, connect, stdin, kill, list


def test_a_background_command_is_reattached_by_pid_and_waited_for(sandbox):
    handle = sandbox.commands.run("read go; echo finished", background=True, stdin=True)
    again = sandbox.commands.connect(handle.pid)
    assert again.pid == handle.pid
    sandbox.commands.send_stdin(handle.pid, "now\n")
    assert again.wait().stdout == "finished\n"


def test_a_reattached_stream_carries_only_what_comes_after_it(sandbox):
    handle = sandbox.commands.run("echo before; read go; echo after", background=True, stdin=True)
    first = next(iter(handle))
    assert first == ("before\n", None, None)
    handle.disconnect()
    again = sandbox.commands.connect(handle.pid)
    sandbox.commands.send_stdin(handle.pid, "x\n")
    assert again.wait().stdout == "after\n"


def test_disconnecting_from_start_leaves_the_command_running(sandbox):
    handle = sandbox.commands.run("read go; echo still here", background=True, stdin=True)
    handle.disconnect()
    assert handle.pid in [p.pid for p in sandbox.commands.list()]
    again = sandbox.commands.connect(handle.pid)
    sandbox.commands.send_stdin(handle.pid, "x\n")
    assert again.wait().stdout == "still here\n"


def test_a_command_outliving_the_clients_timeout_keeps_running(sandbox):
    with pytest.raises(TimeoutException):
        sandbox.commands.run("sleep 600; echo never", timeout=1)
    running = [p for p in sandbox.commands.list() if p.args == ["-l", "-c", "sleep 600; echo never"]]
    assert len(running) == 1
    assert sandbox.commands.kill(running[0].pid) is True


def test_send_stdin_then_close_stdin_ends_the_input(sandbox):
    handle = sandbox.commands.run("cat; echo EOF", background=True, stdin=True)
    sandbox.commands.send_stdin(handle.pid, "abc ")
    handle.send_stdin(b"\x00\xffdef")
    handle.close_stdin()
    result = handle.wait()
    assert result.stdout == "abc \x00\ufffddef" + "EOF\n"


def test_without_stdin_the_command_reads_end_of_file(sandbox):
    assert sandbox.commands.run("cat; echo done").stdout == "done\n"


def test_kill_ends_a_command_with_sigkill_and_a_second_kill_finds_nothing(sandbox):
    handle = sandbox.commands.run("sleep 600", background=True)
    assert sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as e:
        handle.wait()
    assert e.value.exit_code == -1
    assert e.value.error == "signal: killed"
    assert handle.pid not in [p.pid for p in sandbox.commands.list()]
    assert sandbox.commands.kill(handle.pid) is False


def test_list_shows_running_commands_with_their_config(sandbox):
    handle = sandbox.commands.run("sleep 600", background=True, cwd="/tmp")
    listed = {p.pid: p for p in sandbox.commands.list()}
    assert handle.pid in listed
    p = listed[handle.pid]
    assert (p.cmd, p.args, p.cwd, p.tag) == ("/bin/bash", ["-l", "-c", "sleep 600"], "/tmp", None)
    handle.kill()


def test_connect_to_an_unknown_pid_is_not_found(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.commands.connect(999999)
    with pytest.raises(NotFoundException):
        sandbox.commands.send_stdin(999999, "x")


def test_killing_the_sandbox_ends_an_open_stream(sandbox):
    handle = sandbox.commands.run("sleep 600", background=True)
    delete_v1(KEY_A, sandbox.sandbox_id)
    # The SDK's reading of a sandbox that is gone (Connect `unavailable`).
    with pytest.raises(TimeoutException) as e:
        handle.wait()
    assert "was killed or ended" in str(e.value)


# MARK: pty


def pty_output(handle):
    """Everything the terminal printed until the session ended (its exit status ignored)."""
    chunks = []
    try:
        handle.wait(on_pty=chunks.append)
    except CommandExitException:
        pass
    return b"".join(chunks).decode(errors="replace")


def test_pty_takes_input_and_resizes(sandbox):
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80))
    sandbox.pty.resize(terminal.pid, PtySize(rows=33, cols=101))
    sandbox.pty.send_stdin(terminal.pid, b"stty size; tty; whoami; exit\n")
    out = pty_output(terminal)
    assert "33 101" in out
    assert "/dev/pts/" in out
    assert "user" in out


def test_pty_kill_ends_the_session(sandbox):
    terminal = sandbox.pty.create(PtySize(rows=24, cols=80))
    assert sandbox.pty.kill(terminal.pid) is True
    with pytest.raises(CommandExitException) as e:
        terminal.wait()
    assert e.value.exit_code == -1
    assert sandbox.pty.kill(terminal.pid) is False


def test_resizing_a_command_without_a_terminal_is_refused(sandbox):
    handle = sandbox.commands.run("sleep 600", background=True)
    with pytest.raises(SandboxException):
        sandbox.pty.resize(handle.pid, PtySize(rows=10, cols=10))
    handle.kill()


# MARK: async client


@pytest.mark.asyncio
async def test_async_run_envs_cwd_and_exit_codes(async_sandbox):
    result = await async_sandbox.commands.run("echo $A; pwd; whoami", envs={"A": "async"})
    assert result.stdout == "async\n/home/user\nuser\n"
    assert (await async_sandbox.commands.run("whoami", user="root")).stdout == "root\n"
    with pytest.raises(CommandExitException) as e:
        await async_sandbox.commands.run("echo no >&2; exit 7")
    assert (e.value.exit_code, e.value.stderr) == (7, "no\n")


@pytest.mark.asyncio
async def test_async_background_connect_stdin_and_kill(async_sandbox):
    handle = await async_sandbox.commands.run("read x; echo got $x", background=True, stdin=True)
    again = await async_sandbox.commands.connect(handle.pid)
    await async_sandbox.commands.send_stdin(handle.pid, "42\n")
    assert (await again.wait()).stdout == "got 42\n"
    sleeper = await async_sandbox.commands.run("sleep 600", background=True)
    assert sleeper.pid in [p.pid for p in await async_sandbox.commands.list()]
    assert await async_sandbox.commands.kill(sleeper.pid) is True
    assert await async_sandbox.commands.kill(sleeper.pid) is False


@pytest.mark.asyncio
async def test_async_pty_resize_and_input(async_sandbox):
    chunks = []
    terminal = await async_sandbox.pty.create(PtySize(rows=20, cols=70), on_data=chunks.append)
    await async_sandbox.pty.resize(terminal.pid, PtySize(rows=40, cols=120))
    await async_sandbox.pty.send_stdin(terminal.pid, b"stty size; exit\n")
    try:
        await terminal.wait()
    except CommandExitException:
        pass
    assert "40 120" in b"".join(chunks).decode(errors="replace")


# MARK: raw Connect


def test_a_malformed_envelope_is_invalid_argument(sandbox):
    # The envelope announces 100 bytes and carries 3.
    body = struct.pack(">BI", 0, 100) + b"{}}"
    r = httpx.post(f"{URL}/process.Process/Start", content=body, timeout=30,
                   headers=plane_headers(sandbox.sandbox_id, "application/connect+json"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/connect+json")
    (flags, end), = read_envelopes(r.content)
    assert flags == 2
    assert end["error"]["code"] == "invalid_argument"


def test_a_malformed_unary_message_is_invalid_argument(sandbox):
    r = httpx.post(f"{URL}/process.Process/SendSignal", content=b'{"process": {"pid": "x"}', timeout=30,
                   headers=plane_headers(sandbox.sandbox_id, "application/json"))
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_argument"
    r = httpx.post(f"{URL}/process.Process/SendSignal", json={"process": {"pid": 1}, "signal": "SIGNAL_SIGHUP"},
                   timeout=30, headers=plane_headers(sandbox.sandbox_id, "application/json"))
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_argument"


def test_start_speaks_proto3_json_and_tags_select_processes(sandbox):
    start = {"process": {"cmd": "/bin/sh", "args": ["-c", "printf 'a\\377'; exit 4"]}, "tag": "job-1"}
    r = httpx.post(f"{URL}/process.Process/Start", content=envelope(start), timeout=60,
                   headers=plane_headers(sandbox.sandbox_id, "application/connect+json"))
    messages = [m for _, m in read_envelopes(r.content)]
    assert set(messages[0]["event"]) == {"start"} and messages[0]["event"]["start"]["pid"] > 0
    stdout = b"".join(base64.b64decode(m["event"]["data"]["stdout"]) for m in messages[:-1] if "data" in m["event"])
    assert stdout == b"a\xff"
    assert messages[-2] == {"event": {"end": {"exitCode": 4, "exited": True, "status": "exit status 4", "error": "exit status 4"}}}
    assert messages[-1] == {}

    handle = sandbox.commands.run("sleep 600", background=True)
    tagged = {"process": {"cmd": "sleep", "args": ["600"]}, "tag": "sleeper"}
    with httpx.stream("POST", f"{URL}/process.Process/Start", content=envelope(tagged), timeout=60,
                      headers=plane_headers(sandbox.sandbox_id, "application/connect+json")) as s:
        first = next(s.iter_bytes())
        pid = json.loads(first[5:])["event"]["start"]["pid"]
        listed = httpx.post(f"{URL}/process.Process/List", json={}, timeout=30,
                            headers=plane_headers(sandbox.sandbox_id, "application/json")).json()["processes"]
        assert {"config": {"cmd": "sleep", "args": ["600"], "cwd": "/home/user"}, "pid": pid, "tag": "sleeper"} in listed
        killed = httpx.post(f"{URL}/process.Process/SendSignal", json={"process": {"tag": "sleeper"}, "signal": "SIGNAL_SIGTERM"},
                            timeout=30, headers=plane_headers(sandbox.sandbox_id, "application/json"))
        assert killed.status_code == 200 and killed.json() == {}
    assert pid not in [p.pid for p in sandbox.commands.list()]
    assert handle.pid in [p.pid for p in sandbox.commands.list()]
    handle.kill()


def test_a_quiet_stream_carries_keepalives_at_the_asked_interval(sandbox):
    start = {"process": {"cmd": "/bin/bash", "args": ["-c", "read x; echo got $x"]}, "stdin": True}
    headers = plane_headers(sandbox.sandbox_id, "application/connect+json") | {"Keepalive-Ping-Interval": "1"}
    events = []
    with httpx.stream("POST", f"{URL}/process.Process/Start", content=envelope(start), headers=headers, timeout=60) as s:
        pending = b""
        for chunk in s.iter_bytes():
            pending += chunk
            while len(pending) >= 5 and len(pending) >= 5 + struct.unpack(">I", pending[1:5])[0]:
                length = struct.unpack(">I", pending[1:5])[0]
                message = json.loads(pending[5:5 + length])
                pending = pending[5 + length:]
                event = message.get("event", {})
                events.append(next(iter(event), "end-of-stream"))
                if "start" in event:
                    pid = event["start"]["pid"]
                if "keepalive" in event and events.count("keepalive") == 1:
                    sandbox.commands.send_stdin(pid, "late\n")
    assert events[0] == "start"
    assert events.index("keepalive") < events.index("data")
    assert events[-2:] == ["end", "end-of-stream"]


def test_stream_input_feeds_stdin_from_a_client_stream(sandbox):
    handle = sandbox.commands.run("cat", background=True, stdin=True)
    messages = [
        {"start": {"process": {"pid": handle.pid}}},
        {"data": {"input": {"stdin": base64.b64encode(b"one ").decode()}}},
        {"keepalive": {}},
        {"data": {"input": {"stdin": base64.b64encode(b"two").decode()}}},
    ]
    r = httpx.post(f"{URL}/process.Process/StreamInput", content=b"".join(envelope(m) for m in messages), timeout=30,
                   headers=plane_headers(sandbox.sandbox_id, "application/connect+json"))
    assert read_envelopes(r.content) == [(0, {}), (2, {})]
    handle.close_stdin()
    assert handle.wait().stdout == "one two"

    # Input reaches the process while the client's stream is still open.
    reader = sandbox.commands.run("read line; echo got $line", background=True, stdin=True)

    def body():
        yield envelope({"start": {"process": {"pid": reader.pid}}})
        yield envelope({"data": {"input": {"stdin": base64.b64encode(b"live\n").decode()}}})
        for stdout, _, _ in reader:  # blocks until the process answered: the stream is still open
            if stdout and "got live" in stdout:
                break
        yield envelope({"keepalive": {}})

    r = httpx.post(f"{URL}/process.Process/StreamInput", content=body(), timeout=30,
                   headers=plane_headers(sandbox.sandbox_id, "application/connect+json"))
    assert read_envelopes(r.content) == [(0, {}), (2, {})]

    # Data before start, and a process that is gone.
    r = httpx.post(f"{URL}/process.Process/StreamInput", content=envelope(messages[1]), timeout=30,
                   headers=plane_headers(sandbox.sandbox_id, "application/connect+json"))
    assert read_envelopes(r.content)[-1][1]["error"]["code"] == "invalid_argument"
    r = httpx.post(f"{URL}/process.Process/StreamInput", content=envelope(messages[0]), timeout=30,
                   headers=plane_headers(sandbox.sandbox_id, "application/connect+json"))
    assert read_envelopes(r.content)[-1][1]["error"]["code"] == "not_found"


def test_another_tenants_sandbox_is_not_found_on_the_process_service(sandbox):
    import os
    key_b = os.environ.get("SANDBOXER_API_KEY_B", "")
    if not key_b:
        pytest.skip("SANDBOXER_API_KEY_B is not set")
    headers = plane_headers(sandbox.sandbox_id, "application/json") | {"X-API-KEY": key_b}
    r = httpx.post(f"{URL}/process.Process/List", json={}, headers=headers, timeout=30)
    assert r.status_code == 502
    assert "was not found" in r.json()["message"]
