"""Installable releases: `scripts/install.sh` (what `make install` runs) puts the built programs
under a PREFIX; the systemd unit's own command line started from there serves the API with a
configuration file (and a flag that wins over it); uninstall leaves no file behind.

Installs the build under test (the directory of $SANDBOXER_BIN, debug in `make test`): no second
build. There is no systemd as pid 1 here, so the unit's ExecStart is parsed and run directly.
"""
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import httpx

from conftest import BIN, auth, free_port, require_root

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def files_under(root):
    """Every file and symlink under `root` (directories do not count)."""
    found = []
    for d, dirs, files in os.walk(root):
        found += [os.path.join(d, n) for n in files]
        found += [os.path.join(d, n) for n in dirs if os.path.islink(os.path.join(d, n))]
    return sorted(found)


def exec_start(unit_path):
    """The unit's ExecStart= as argv."""
    with open(unit_path) as f:
        lines = [l.strip() for l in f if l.strip().startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0][len("ExecStart="):])


def install(prefix, *args):
    env = {**os.environ, "PREFIX": prefix}
    return subprocess.run([os.path.join(REPO, "scripts", "install.sh"), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_install_start_the_unit_create_a_sandbox_uninstall():
    require_root()
    build = os.path.dirname(BIN)
    tmp = tempfile.mkdtemp(prefix="sbx-install-")
    os.chmod(tmp, 0o755)
    prefix = os.path.join(tmp, "prefix")
    server = None
    try:
        r = install(prefix, "install", build)
        assert r.returncode == 0, r.stderr
        libexec = os.path.join(prefix, "libexec", "sandboxer")
        # The layout: programs together in libexec, a symlink on the PATH, debug info split off.
        for name in ("sandboxer", "sandboxer-agent", "qjs.wasm", "sandboxer.debug", "sandboxer-agent.debug"):
            assert os.path.isfile(os.path.join(libexec, name)), name
        assert os.path.realpath(os.path.join(prefix, "bin", "sandboxer")) == os.path.join(libexec, "sandboxer")
        sections = subprocess.run(["objdump", "-h", os.path.join(libexec, "sandboxer")], capture_output=True, text=True).stdout
        assert ".gnu_debuglink" in sections and ".debug_info" not in sections, sections
        assert os.path.getsize(os.path.join(libexec, "sandboxer")) < os.path.getsize(BIN)

        # The unit's command line, from the installed unit file.
        argv = exec_start(os.path.join(prefix, "lib", "systemd", "system", "sandboxer.service"))
        assert argv == [os.path.join(prefix, "bin", "sandboxer"), "serve"], argv
        if shutil.which("systemd-analyze"):
            v = subprocess.run(["systemd-analyze", "verify", os.path.join(prefix, "lib", "systemd", "system", "sandboxer.service")],
                               capture_output=True, text=True)
            assert v.returncode == 0 and not v.stderr.strip(), v.stderr

        # A configuration file sets the port and a data directory; --data on the command line wins.
        port = free_port()
        config_data, flag_data = os.path.join(tmp, "config-data"), os.path.join(tmp, "flag-data")
        os.makedirs(flag_data, mode=0o755)
        config = os.path.join(tmp, "etc", "config.yaml")
        os.makedirs(os.path.dirname(config))
        with open(config, "w") as f:
            f.write(f"port: {port}\nhost: 127.0.0.1\ndata: {config_data}\nwarm-pool: {{}}\nallow-open-network: false\n")
        state = os.path.join(tmp, "state")
        os.makedirs(state, mode=0o755)
        env = {k: v for k, v in os.environ.items()
               if k not in ("SANDBOXER_AGENT", "SANDBOXER_QJS_WASM", "SANDBOXER_DATA", "SANDBOXER_PORT", "SANDBOXER_STORE")}
        env.update(SANDBOXER_CONFIG=config, SANDBOXER_STATE_DIR=state)
        installed = os.path.join(prefix, "bin", "sandboxer")
        key = subprocess.run([installed, "key", "create", "--tenant", "install-test", "--data", flag_data], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        log = open(os.path.join(tmp, "serve.log"), "wb")
        server = subprocess.Popen(argv + ["--data", flag_data], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            assert server.poll() is None, open(log.name).read()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "the installed server is not ready in 60 s: " + open(log.name).read()[-3000:]
            time.sleep(0.1)
        assert not os.path.exists(config_data), "the command line's --data should win over the file's"

        with httpx.Client(base_url=url, headers=auth(key), timeout=60) as c:
            # A container sandbox: its pid 1 is the installed (stripped) agent, copied from libexec.
            r = c.post("/v1/sandboxes", json={"ttl": "5m"})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            r = c.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["sh", "-c", "echo installed"]})
            assert r.status_code == 200 and r.json()["stdout"] == "installed\n", r.text
            agent_size = os.path.getsize(os.path.join(libexec, "sandboxer-agent"))
            copies = [d for _, dirs, _ in os.walk(state) for d in dirs if d.startswith(f"{agent_size}-")]
            assert copies, f"no agent copy of the installed agent ({agent_size} bytes) under {state}"
            assert c.delete(f"/v1/sandboxes/{sid}").status_code in (200, 204)
            # A WASM sandbox: JavaScript runs with the installed qjs.wasm.
            r = c.post("/v1/sandboxes", json={"profile": {"name": "install-js", "isolation": "wasm"}})
            assert r.status_code == 201, r.text
            wid = r.json()["id"]
            r = c.post(f"/v1/sandboxes/{wid}/exec", json={"code": "console.log(6 * 7)", "lang": "js"})
            assert r.status_code == 200 and r.json()["stdout"] == "42\n", r.text
            assert c.delete(f"/v1/sandboxes/{wid}").status_code in (200, 204)

        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0, open(log.name).read()[-3000:]
        server = None

        r = install(prefix, "uninstall")
        assert r.returncode == 0, r.stderr
        assert files_under(prefix) == []
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
