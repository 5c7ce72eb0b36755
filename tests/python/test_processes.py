"""Background processes: start, list, output replay/follow (SSE), stdin, close-stdin, signals, PTY."""
import time

import httpx

from conftest import assert_problem, sse_events

PROCESS_KEYS = {"pid", "argv", "cwd", "pty", "background", "running", "started_at"}


def procs(sid):
    return f"/v1/sandboxes/{sid}/processes"


def start(client, sid, **body):
    r = client.post(procs(sid), json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert PROCESS_KEYS <= p.keys(), PROCESS_KEYS - p.keys()
    return p


def follow(client, sid, pid, until=None, timeout=30):
    """Reads the output stream; stops at `result` (returned) or once `until` is in stdout (None result)."""
    out, events = "", []
    with client.stream("GET", f"{procs(sid)}/{pid}/output", timeout=httpx.Timeout(timeout)) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for event, data in sse_events(r):
            events.append(event)
            if event == "result":
                return out, data, events
            if event == "error":
                raise AssertionError(f"error event: {data}")
            out += data.get("text", "")
            if until is not None and until in out:
                return out, None, events
    return out, None, events


def wait_ended(client, sid, pid, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = next(p for p in client.get(procs(sid)).json()["items"] if p["pid"] == pid)
        if not p["running"]:
            return p
        time.sleep(0.2)
    raise AssertionError(f"process {pid} still running")


def test_background_start_list_replay(client, shared_sandbox):
    sid = shared_sandbox["id"]
    p = start(client, sid, cmd=["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"], tag="counter")
    assert p["background"] is True and p["pty"] is False and p["tag"] == "counter"
    assert p["argv"][-1].startswith("for i in"), p
    listed = client.get(procs(sid))
    assert listed.status_code == 200
    assert p["pid"] in [x["pid"] for x in listed.json()["items"]]
    ended = wait_ended(client, sid, p["pid"])
    assert ended["exit_code"] == 0, ended
    # reconnect after the end: the whole output is replayed, then the result
    for _ in range(2):
        out, result, _ = follow(client, sid, p["pid"])
        assert out == "line1\nline2\nline3\n", out
        assert result["outcome"] == "ok" and result["exit_code"] == 0, result


def test_reconnect_while_running(client, shared_sandbox):
    sid = shared_sandbox["id"]
    p = start(client, sid, cmd=["sh", "-c", "echo first; sleep 1.5; echo second"])
    out, result, _ = follow(client, sid, p["pid"], until="first")
    assert result is None and out == "first\n"
    # a second connection replays 'first' and follows on to the end
    out, result, _ = follow(client, sid, p["pid"])
    assert out == "first\nsecond\n", out
    assert result["outcome"] == "ok"


def test_input_and_close_stdin(client, shared_sandbox):
    sid = shared_sandbox["id"]
    p = start(client, sid, cmd=["python3", "-u", "-c",
                                "import sys\nfor l in sys.stdin: print('echo:' + l.strip())\nprint('eof')"])
    pid = p["pid"]
    r = client.post(f"{procs(sid)}/{pid}/input", json={"data": "one\n"})
    assert r.status_code == 204, r.text
    r = client.post(f"{procs(sid)}/{pid}/input", json={"data_base64": "dHdvCg=="})  # "two\n"
    assert r.status_code == 204, r.text
    out, _, _ = follow(client, sid, pid, until="echo:two\n")  # print writes the text and its newline separately
    assert out == "echo:one\necho:two\n", out
    r = client.post(f"{procs(sid)}/{pid}/close-stdin")
    assert r.status_code == 204, r.text
    out, result, _ = follow(client, sid, pid)
    assert out == "echo:one\necho:two\neof\n", out
    assert result["outcome"] == "ok", result
    assert_problem(client.post(f"{procs(sid)}/{pid}/input", json={"data": "x", "extra": 1}), 400, "invalid_request")


def test_signal(client, shared_sandbox):
    sid = shared_sandbox["id"]
    p = start(client, sid, cmd=["sleep", "60"])
    r = client.post(f"{procs(sid)}/{p['pid']}/signal", json={"signal": "INT"})
    assert r.status_code == 204, r.text
    ended = wait_ended(client, sid, p["pid"])
    assert ended["signal"] == 2, ended
    # default TERM, numbers accepted
    p = start(client, sid, cmd=["sleep", "60"])
    assert client.post(f"{procs(sid)}/{p['pid']}/signal").status_code == 204
    assert wait_ended(client, sid, p["pid"])["signal"] == 15
    p = start(client, sid, cmd=["sleep", "60"])
    assert client.post(f"{procs(sid)}/{p['pid']}/signal", json={"signal": 9}).status_code == 204
    assert wait_ended(client, sid, p["pid"])["signal"] == 9
    body = assert_problem(client.post(f"{procs(sid)}/{p['pid']}/signal", json={"signal": "NOPE"}), 400, "invalid_request")
    assert "TERM" in body["detail"]


def test_pty_start_and_resize(client, shared_sandbox):
    sid = shared_sandbox["id"]
    p = start(client, sid, cmd=["sh", "-c", "stty size; read x; stty size"], pty={"cols": 100, "rows": 30})
    assert p["pty"] is True, p
    pid = p["pid"]
    out, _, _ = follow(client, sid, pid, until="30 100")
    assert "30 100" in out, out
    r = client.post(f"{procs(sid)}/{pid}/resize", json={"cols": 132, "rows": 43})
    assert r.status_code == 204, r.text
    assert client.post(f"{procs(sid)}/{pid}/input", json={"data": "go\n"}).status_code == 204
    out, result, _ = follow(client, sid, pid)
    assert "43 132" in out, out
    assert result is not None
    assert_problem(client.post(f"{procs(sid)}/{pid}/resize", json={"cols": 0, "rows": 10}), 400, "invalid_request")
    assert_problem(client.post(f"{procs(sid)}/{pid}/resize", json={"cols": 80}), 400, "invalid_request")


def test_unknown_process(client, shared_sandbox):
    sid = shared_sandbox["id"]
    assert_problem(client.get(f"{procs(sid)}/999999/output"), 404, "not_found")
    assert_problem(client.post(f"{procs(sid)}/999999/signal", json={"signal": "TERM"}), 404, "not_found")
    assert_problem(client.post(f"{procs(sid)}/999999/input", json={"data": "x"}), 404, "not_found")
    assert_problem(client.post(f"{procs(sid)}/abc/signal"), 400, "invalid_request")
