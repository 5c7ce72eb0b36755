"""sandboxer's code interpreter driver: runs inside the sandbox, one process per call of the
code interpreter's HTTP surface (port 49999), started by the server through the sandbox's agent.

    python3 interpreter.py COMMAND < request.json

COMMAND is create, list, remove, restart, resolve (the context an execution would use, made
if it is a language's first), interrupt or execute. Every command prints JSON lines
on stdout. The first line is `{"ok": ...}` (what the call answers) or `{"error": {"status": N,
"message": "..."}}`; `execute` then streams the execution's lines in the shape E2B's code
interpreter sends them (stdout, stderr, result, error, number_of_executions).

Each context is a long-lived process of its own session (it outlives this driver): a Jupyter
kernel (ipykernel, reached with jupyter_client over unix sockets) for Python, js-kernel.js for
JavaScript. Its state lives in ~/.sandboxer-interpreter/<id>/ (meta.json, the connection file).
"""
import fcntl
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

STATE = os.path.join(os.path.expanduser("~"), ".sandboxer-interpreter")
HERE = os.path.dirname(os.path.abspath(__file__))
LANGUAGES = ("python", "javascript")
START_SECONDS = 60
# Run silently in each new Python kernel: a pandas DataFrame also comes as `data` (E2B's
# `e2b/data`: its columns as lists), as in E2B's interpreter.
KERNEL_STARTUP = """
def _sandboxer_startup():
    import sys
    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    class DataFormatter(BaseFormatter):
        format_type = Unicode("e2b/data")
        print_method = ObjectName("_repr_e2b_data_")
        _return_type = (dict, str)

        def __call__(self, obj):
            pandas = sys.modules.get("pandas")
            if pandas is None or not isinstance(obj, pandas.DataFrame):
                return super().__call__(obj)
            data = obj.to_dict(orient="list")
            return {k: [v.isoformat() if isinstance(v, pandas.Timestamp) else v for v in vs] for k, vs in data.items()}

    formatter = get_ipython().display_formatter
    formatter.formatters["e2b/data"] = DataFormatter(parent=formatter)

_sandboxer_startup()
del _sandboxer_startup
"""


# Where output lines go: stdout, or in a bridge the connection of the execution it runs.
OUT = sys.stdout


def emit(obj):
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


class Failure(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def normalize_language(language):
    if not language:
        return "python"
    language = str(language).strip().lower()
    if language in ("js", "node", "nodejs"):
        language = "javascript"
    if language not in LANGUAGES:
        raise Failure(400, f"language '{language}' is not supported here: use python or javascript")
    return language


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Lock:
    """One driver at a time changes the contexts (two first uses of a language make one default)."""

    def __enter__(self):
        os.makedirs(STATE, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(STATE, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def meta_path(context_id):
    if not context_id or "/" in context_id or context_id.startswith("."):
        raise Failure(404, f"Context {context_id} not found")
    return os.path.join(STATE, context_id, "meta.json")


def load(context_id):
    try:
        with open(meta_path(context_id)) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise Failure(404, f"Context {context_id} not found")


def save(meta):
    path = meta_path(meta["id"])
    with open(path + ".tmp", "w") as f:
        json.dump(meta, f)
    os.replace(path + ".tmp", path)


def all_contexts():
    out = []
    if not os.path.isdir(STATE):
        return out
    for name in os.listdir(STATE):
        try:
            out.append(load(name))
        except Failure:
            continue
    return sorted(out, key=lambda m: (m.get("created", 0), m["id"]))


def view(meta):
    return {"id": meta["id"], "language": meta["language"], "cwd": meta["cwd"]}


def spawn(meta):
    """Starts the context's process in a session of its own (it outlives this driver) and waits
    until it answers."""
    directory = os.path.dirname(meta_path(meta["id"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
    log = open(os.path.join(directory, "kernel.log"), "ab")
    if meta["language"] == "python":
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", os.path.join(directory, "connection.json")]
    else:
        argv = ["node", os.path.join(HERE, "js-kernel.js"), os.path.join(directory, "js.sock")]
    child = subprocess.Popen(argv, cwd=meta["cwd"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, close_fds=True)
    log.close()
    meta["pid"] = child.pid
    save(meta)
    deadline = time.monotonic() + START_SECONDS
    if meta["language"] == "python":
        client = kernel_client(meta)
        try:
            while True:
                try:
                    client.wait_for_ready(timeout=max(1, deadline - time.monotonic()))
                    break
                except RuntimeError:
                    # A client without a kernel manager judges "died" by missed heartbeats, which a
                    # kernel still importing on a loaded machine misses: the process itself says.
                    if child.poll() is not None or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.2)
            quiet(client, KERNEL_STARTUP)
        except RuntimeError as e:
            raise Failure(500, f"the Python kernel did not start: {e} (see {directory}/kernel.log)")
        finally:
            client.stop_channels()
        # The kernel's bridge: keeps a client (jupyter_client imported once) so that an
        # execution's driver only relays (the driver falls back to a client of its own without it).
        log = open(os.path.join(directory, "bridge.log"), "ab")
        bridge = subprocess.Popen([sys.executable, os.path.abspath(__file__), "bridge", meta["id"]], cwd="/", env=env,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
        log.close()
        meta["bridge_pid"] = bridge.pid
        save(meta)
    else:
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(os.path.join(directory, "js.sock"))
                    s.sendall(b'{"ping": true}\n')
                break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise Failure(500, f"the JavaScript context did not start (see {directory}/kernel.log)")
                time.sleep(0.05)


def create(language, cwd, default=False):
    language = normalize_language(language)
    cwd = cwd or ("/home/user" if os.path.isdir("/home/user") else os.path.expanduser("~"))
    if not os.path.isdir(cwd):
        raise Failure(400, f"cwd {cwd} is not a directory in the sandbox: make it first or give another")
    context_id = str(uuid.uuid4())
    directory = os.path.join(STATE, context_id)
    os.makedirs(directory, mode=0o700)
    meta = {"id": context_id, "language": language, "cwd": cwd, "default": default, "created": time.time()}
    if language == "python":
        from jupyter_client.connect import write_connection_file
        write_connection_file(os.path.join(directory, "connection.json"), transport="ipc",
                              ip=os.path.join(directory, "k"), key=uuid.uuid4().hex.encode())
    save(meta)
    try:
        spawn(meta)
    except BaseException:
        stop(meta)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return meta


def stop(meta):
    bridge = meta.pop("bridge_pid", None)
    if bridge:
        try:
            os.kill(bridge, signal.SIGKILL)
        except OSError:
            pass
    pid = meta.get("pid")
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(200):
        if not alive(pid):
            break
        time.sleep(0.01)


def restart(meta):
    stop(meta)
    directory = os.path.dirname(meta_path(meta["id"]))
    for name in os.listdir(directory):
        if name.startswith("k-") or name in ("js.sock", "py.sock"):
            os.unlink(os.path.join(directory, name))
    spawn(meta)


def ensure_defaults():
    """The default context of each language, made on the first call (as E2B's interpreter has
    them from its start): an execution without a context runs in its language's."""
    for language in LANGUAGES:
        meta = next((m for m in all_contexts() if m.get("default") and m["language"] == language), None)
        if meta is None:
            create(language, None, default=True)
        elif not alive(meta.get("pid") or 0):
            restart(meta)


def resolve(request):
    """The context an execution runs in: its id, or the default one of its language."""
    context_id, language = request.get("context_id"), request.get("language")
    if context_id and language:
        raise Failure(400, "Only one of context_id or language can be provided")
    with Lock():
        ensure_defaults()
        if context_id:
            meta = load(context_id)
        else:
            language = normalize_language(language)
            meta = next(m for m in all_contexts() if m.get("default") and m["language"] == language)
        if not alive(meta.get("pid") or 0):
            restart(meta)  # it exited (exit(), a crash): as Jupyter does, a fresh kernel
        return meta


def kernel_client(meta):
    from jupyter_client import BlockingKernelClient
    client = BlockingKernelClient(connection_file=os.path.join(os.path.dirname(meta_path(meta["id"])), "connection.json"))
    client.load_connection_file()
    client.start_channels()
    return client


def result_line(data, main):
    """A display_data / execute_result bundle as E2B's Result."""
    data = dict(data)
    line = {"type": "result", "is_main_result": main}
    text = data.pop("text/plain", None)
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    for key, mime in (("text", None), ("html", "text/html"), ("markdown", "text/markdown"), ("svg", "image/svg+xml"),
                      ("png", "image/png"), ("jpeg", "image/jpeg"), ("pdf", "application/pdf"), ("latex", "text/latex"),
                      ("json", "application/json"), ("javascript", "application/javascript"), ("data", "e2b/data"),
                      ("chart", "e2b/chart")):
        value = text if mime is None else data.pop(mime, None)
        if value is not None:
            line[key] = value
    line["extra"] = data
    return line


def timestamp(msg):
    date = msg.get("header", {}).get("date")
    return date.isoformat() if hasattr(date, "isoformat") else str(date or "")


def run_python(meta, code, env_vars):
    """Through the context's bridge when it answers, else with a client of this driver's own."""
    try:
        relay(os.path.join(os.path.dirname(meta_path(meta["id"])), "py.sock"), code, env_vars)
        return
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    client = kernel_client(meta)
    try:
        execute_in(meta, client, code, env_vars)
    finally:
        client.stop_channels()


def bridge(context_id):
    """A Python context's bridge: one kernel client, executions taken one at a time from a unix
    socket (a JSON line each) and streamed back on it; ends when the kernel does."""
    global OUT
    meta = load(context_id)
    path = os.path.join(os.path.dirname(meta_path(context_id)), "py.sock")
    client = kernel_client(meta)
    server = socket.socket(socket.AF_UNIX)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path)
    server.listen(4)
    server.settimeout(2)
    while alive(meta["pid"]):
        try:
            connection, _ = server.accept()
        except socket.timeout:
            continue
        with connection:
            connection.settimeout(None)
            try:
                with connection.makefile("r") as lines:
                    request = json.loads(lines.readline() or "{}")
                OUT = connection.makefile("w")
                execute_in(meta, client, request.get("code", ""), request.get("env_vars") or {})
            except Exception as e:  # the driver went away (its execution is being interrupted), or a bad request
                print(f"bridge: {e!r}", file=sys.stderr, flush=True)
            finally:
                OUT = sys.stdout


def execute_in(meta, client, code, env_vars):
    try:
        if env_vars:
            keys = json.dumps(list(env_vars))
            quiet(client, f"import os as _sbx_os\n_sbx_saved = {{k: _sbx_os.environ.get(k) for k in {keys}}}\n"
                          f"_sbx_os.environ.update({json.dumps(env_vars)})")
        stream_python(meta, client, client.execute(code, silent=False, store_history=True, allow_stdin=False, stop_on_error=True))
    finally:
        if env_vars:
            quiet(client, "for _k, _v in _sbx_saved.items():\n"
                          "    _sbx_os.environ.pop(_k, None) if _v is None else _sbx_os.environ.__setitem__(_k, _v)\n"
                          "del _sbx_saved, _k, _v")


def quiet(client, code):
    """Runs code silently (no output, no execution count) and waits until it is done."""
    client.execute_interactive(code, silent=True, store_history=False, allow_stdin=False, stop_on_error=False,
                               output_hook=lambda msg: None, timeout=30)


def stream_python(meta, client, msg_id):
    accepted, errored = False, False
    while True:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except queue.Empty:
            if not alive(meta["pid"]):
                emit({"type": "error", "name": "KernelDied", "traceback": "",
                      "value": "the context's kernel exited during the execution; its state is lost (the next execution starts a new one)"})
                return
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            emit({"type": content["name"], "text": content["text"], "timestamp": timestamp(msg)})
        elif kind == "display_data":
            emit(result_line(content["data"], False))
        elif kind == "execute_result":
            emit(result_line(content["data"], True))
        elif kind == "error" and not errored:
            errored = True
            emit({"type": "error", "name": content["ename"], "value": content["evalue"], "traceback": "".join(content["traceback"])})
        elif kind == "execute_input":
            accepted = True
            emit({"type": "number_of_executions", "execution_count": content["execution_count"]})
        elif kind == "status" and content["execution_state"] == "idle" and accepted:
            return


def run_javascript(meta, code, env_vars):
    relay(os.path.join(os.path.dirname(meta_path(meta["id"])), "js.sock"), code, env_vars)


def relay(path, code, env_vars):
    """Sends an execution to a context's socket and copies its lines to stdout."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall((json.dumps({"code": code, "env_vars": env_vars or {}}) + "\n").encode())
        with s.makefile("rb") as lines:
            for line in lines:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()


def interrupt(meta):
    """SIGINT to the context's process (KeyboardInterrupt in a kernel, a thrown error in node);
    for a kernel, waits until it answers a kernel_info request, which it takes once the
    interrupted execution is over (at once when it was idle), so the next execution is not
    aborted with that one."""
    pid = meta.get("pid") or 0
    if not alive(pid):
        return
    os.kill(pid, signal.SIGINT)
    if meta["language"] != "python":
        return
    client = kernel_client(meta)
    try:
        request = client.kernel_info()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                reply = client.get_shell_msg(timeout=0.5)
            except queue.Empty:
                continue
            if reply.get("parent_header", {}).get("msg_id") == request:
                break
    finally:
        client.stop_channels()


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        raw = sys.stdin.read()
        request = json.loads(raw) if raw.strip() else {}
        if not isinstance(request, dict):
            raise Failure(400, "the request must be a JSON object")
        if command == "create":
            with Lock():
                ensure_defaults()
                emit({"ok": view(create(request.get("language"), request.get("cwd")))})
        elif command == "list":
            with Lock():
                ensure_defaults()
            emit({"ok": [view(m) for m in all_contexts() if alive(m.get("pid") or 0)]})
        elif command == "remove":
            with Lock():
                meta = load(request.get("id"))
                stop(meta)
                shutil.rmtree(os.path.dirname(meta_path(meta["id"])), ignore_errors=True)
            emit({"ok": None})
        elif command == "restart":
            with Lock():
                restart(load(request.get("id")))
            emit({"ok": None})
        elif command == "resolve":
            emit({"ok": view(resolve(request))})
        elif command == "interrupt":
            interrupt(load(request.get("id")))
            emit({"ok": None})
        elif command == "bridge":
            bridge(sys.argv[2])
        elif command == "execute":
            code = request.get("code")
            if not isinstance(code, str):
                raise Failure(400, "code: give the code to run as a string")
            env_vars = request.get("env_vars") or {}
            if not isinstance(env_vars, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
                raise Failure(400, "env_vars: give an object of string values")
            meta = resolve(request)
            emit({"ok": view(meta)})
            (run_python if meta["language"] == "python" else run_javascript)(meta, code, env_vars)
        else:
            raise Failure(400, f"unknown command '{command}'")
    except Failure as f:
        emit({"error": {"status": f.status, "message": f.message}})
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        emit({"error": {"status": 400, "message": f"the request is not JSON: {e}"}})


if __name__ == "__main__":
    main()
