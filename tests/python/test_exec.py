"""Exec: one process to its end — JSON result, SSE stream, WebSocket."""
import base64
import json
import os

import pytest

from conftest import KEY_A, URL, assert_problem, exec_, sse_events

EXEC_RESULT_KEYS = {"sandbox_id", "outcome", "stdout", "stderr", "stdout_truncated", "stderr_truncated", "usage", "timings"}


def test_exec_print_42(client, shared_sandbox):
    sid = shared_sandbox["id"]
    r = client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["python3", "-c", "print(6*7)"]})
    assert r.status_code == 200, r.text
    res = r.json()
    assert EXEC_RESULT_KEYS <= res.keys(), EXEC_RESULT_KEYS - res.keys()
    assert res["stdout"] == "42\n"
    assert res["outcome"] == "ok"
    assert res["exit_code"] == 0
    assert res["sandbox_id"] == sid
    assert res["stdout_truncated"] is False


def test_exec_curl_d_form_encoded(client, shared_sandbox):
    r = client.post(f"/v1/sandboxes/{shared_sandbox['id']}/exec", content=b'{"cmd":["echo","hi"]}',
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "hi\n"


@pytest.mark.parametrize("code", [1, 3, 42])
def test_exit_codes(client, shared_sandbox, code):
    res = exec_(client, shared_sandbox["id"], cmd=["sh", "-c", f"echo err >&2; exit {code}"])
    assert res["outcome"] == "exit_nonzero", res
    assert res["exit_code"] == code
    assert res["stderr"] == "err\n"


def test_code_and_lang(client, shared_sandbox):
    sid = shared_sandbox["id"]
    res = exec_(client, sid, code="import sys\nprint('py', sys.argv[1:])", lang="python", args=["a", "b"])
    assert res["outcome"] == "ok", res
    assert res["stdout"] == "py ['a', 'b']\n"
    res = exec_(client, sid, code="echo sh:$1", lang="sh", args=["x"])
    assert res["stdout"] == "sh:x\n", res
    res = exec_(client, sid, code="echo ${BASH_VERSION:+bash}", lang="bash")
    assert res["stdout"] == "bash\n", res
    body = assert_problem(client.post(f"/v1/sandboxes/{sid}/exec", json={"code": "x", "lang": "cobol"}), 400, "invalid_request")
    assert body.get("field") == "lang", body
    assert_problem(client.post(f"/v1/sandboxes/{sid}/exec", json={"code": "print(1)"}), 400, "invalid_request")
    assert_problem(client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["true"], "code": "x", "lang": "sh"}), 400, "invalid_request")
    assert_problem(client.post(f"/v1/sandboxes/{sid}/exec", json={}), 400, "invalid_request")
    assert_problem(client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": []}), 400, "invalid_request")


def test_env_cwd_stdin(client, shared_sandbox):
    sid = shared_sandbox["id"]
    res = exec_(client, sid, cmd=["sh", "-c", "echo $FOO; pwd; cat"], env={"FOO": "bar"}, cwd="/tmp", stdin="from stdin")
    assert res["stdout"] == "bar\n/tmp\nfrom stdin", res
    res = exec_(client, sid, cmd=["pwd"])
    assert res["stdout"] == "/workspace\n", res
    raw = bytes(range(256))
    res = exec_(client, sid, cmd=["python3", "-c", "import sys,hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"],
                stdin_base64=base64.b64encode(raw).decode())
    import hashlib
    assert res["stdout"].strip() == hashlib.sha256(raw).hexdigest()
    assert_problem(client.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["pwd"], "cwd": "relative"}), 400, "invalid_request")


def test_timeout(client, shared_sandbox):
    res = exec_(client, shared_sandbox["id"], cmd=["sleep", "30"], timeout="1s")
    assert res["outcome"] == "timeout", res
    assert res["usage"]["wall_ms"] < 15000, res


def test_non_utf8_output(client, shared_sandbox):
    res = exec_(client, shared_sandbox["id"], cmd=["python3", "-c", "import sys; sys.stdout.buffer.write(b'\\xff\\xfeA\\x00')"])
    assert res["outcome"] == "ok", res
    assert "stdout_base64" in res, res
    assert base64.b64decode(res["stdout_base64"]) == b"\xff\xfeA\x00"


def test_sse_streams_chunks_then_result(client, shared_sandbox):
    sid = shared_sandbox["id"]
    body = {"cmd": ["sh", "-c", "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"]}
    with client.stream("POST", f"/v1/sandboxes/{sid}/exec", json=body, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))
    names = [e for e, _ in events]
    assert names[-1] == "result", events
    assert "stdout" in names and "stderr" in names, events
    out = "".join(d["text"] for e, d in events if e == "stdout")
    err = "".join(d["text"] for e, d in events if e == "stderr")
    assert out == "one\nthree\n" and err == "two\n", events
    # several chunks arrived before the result (streamed, not one final blob)
    assert names.count("stdout") >= 2, names
    result = events[-1][1]
    assert result["outcome"] == "ok" and result["stdout"] == "one\nthree\n", result


def test_sse_error_before_stream_is_problem(client):
    r = client.post("/v1/sandboxes/sbx-nope/exec", json={"cmd": ["true"]}, headers={"Accept": "text/event-stream"})
    assert_problem(r, 404, "not_found")


def test_websocket_exec_with_stdin(shared_sandbox):
    websockets = pytest.importorskip("websockets.sync.client")
    url = URL.replace("http://", "ws://") + f"/v1/sandboxes/{shared_sandbox['id']}/exec/ws"
    with websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY_A}"}, open_timeout=30) as ws:
        ws.send(json.dumps({"cmd": ["python3", "-c", "import sys\nfor l in sys.stdin: print('got', l.strip(), flush=True)"]}))
        started = json.loads(ws.recv(timeout=30))
        assert started["type"] == "started" and started["pid"] > 0, started
        ws.send(json.dumps({"type": "stdin", "data": "hello\n"}))
        msg = json.loads(ws.recv(timeout=30))
        assert msg == {"type": "stdout", "text": "got hello\n"}, msg
        ws.send(b"bytes\n")
        ws.send(json.dumps({"type": "close_stdin"}))
        out = ""
        while True:
            msg = json.loads(ws.recv(timeout=30))
            if msg["type"] == "result":
                break
            assert msg["type"] == "stdout", msg
            out += msg["text"]
        assert out == "got bytes\n"
        assert msg["result"]["outcome"] == "ok", msg


def test_websocket_route_without_upgrade_is_problem(client, shared_sandbox):
    r = client.get(f"/v1/sandboxes/{shared_sandbox['id']}/exec/ws")
    assert_problem(r, 426)


def test_websocket_without_key_is_refused_as_unauthorized(shared_sandbox):
    """The upgrade is accepted so the refusal can be a problem (a refused upgrade can only be a bare
    400): the first message is {"type": "error", "problem": {... "code": "unauthorized"}}, then close 1008."""
    websockets = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    path = f"/v1/sandboxes/{shared_sandbox['id']}/exec/ws"
    try:
        ws = websockets.connect(URL.replace("http://", "ws://") + path, open_timeout=10)
    except InvalidStatus as e:  # a handshake refusal must then be a 401 problem
        assert e.response.status_code == 401
        return
    with ws:
        msg = json.loads(ws.recv(timeout=10))
        assert msg["type"] == "error" and msg["problem"]["code"] == "unauthorized", msg
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
