"""Secrets at the edge against a live `sandboxer serve`: the sandbox holds a placeholder, the egress
proxy puts the value only into requests to the secret's hosts (over plain HTTP, and over HTTPS by
terminating TLS with the server's CA and verifying the upstream against a test CA), another
allowlisted host gets only the placeholder, and the value is nowhere inside the sandbox, nor in
its exec record or audit trail."""
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import BIN, FINAL_RUN_STATES, TIMEOUT, auth, drop_server, own_server

VALUE = "real-value-7f3a9c2e-never-inside"


class Echo:
    """An HTTP(S) server on 127.0.0.1 that answers with the request's headers."""

    def __init__(self, tls=None):
        self.seen = []
        echo = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                echo.seen.append(dict(self.headers))
                body = json.dumps(dict(self.headers)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def make_untrusted_cert(directory):
    """A self-signed certificate for api.test that no trust store the proxy uses holds."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", "bad.key", "-out", "bad.pem", "-days", "2", "-subj", "/CN=api.test",
                    "-addext", "subjectAltName=DNS:api.test"], check=True, capture_output=True, cwd=directory)
    return os.path.join(directory, "bad.pem"), os.path.join(directory, "bad.key")


def make_test_ca(directory):
    """A test CA and a certificate for api.test it signed (openssl)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=sandboxer test upstream CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=api.test")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:api.test\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
        "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(directory, "ca.pem"), (os.path.join(directory, "srv.pem"), os.path.join(directory, "srv.key"))


@pytest.fixture(scope="module")
def env():
    tmp = tempfile.mkdtemp(prefix="sbx-secret-ca-")
    ca, cert = make_test_ca(tmp)
    https, plain, other = Echo(tls=cert), Echo(), Echo()
    untrusted = Echo(tls=make_untrusted_cert(tmp))
    args = ["--resolve", "api.test=127.0.0.1", "--resolve", "other.test=127.0.0.1", "--upstream-ca", ca]
    server, key = own_server("sbx-secrets-", "secrets", args=args)
    # API_KEY is the test tenant's own; TOKEN is shared by the operator with every tenant.
    # A secret's value goes over https to port 443 unless its hosts name another port or http://.
    r = subprocess.run([BIN, "secret", "set", "API_KEY", "--hosts", f"api.test:{https.port},http://api.test:{plain.port},api.test:{untrusted.port}",
                        "--tenant", "secrets", "--data", server.data],
                       input=VALUE + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([BIN, "secret", "set", "TOKEN", "--hosts", f"api.test:{https.port}", "--header", "X-Api-Token: tok {value}",
                        "--shared", "--data", server.data], input="tokvalue-91b2\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    c = httpx.Client(base_url=server.url, headers=auth(key), timeout=TIMEOUT)
    made = []
    yield {"client": c, "https": https, "plain": plain, "other": other, "untrusted": untrusted, "server": server, "made": made}
    # Sandboxes outlive a server stop by design: delete what the tests made before dropping it.
    for sid in made:
        c.delete(f"/v1/sandboxes/{sid}")
    c.close()
    drop_server(server)
    for e in (https, plain, other, untrusted):
        e.close()
    shutil.rmtree(tmp, ignore_errors=True)


def make_sandbox(env, secrets=("API_KEY",)):
    prof = {"name": "with-secrets", "network": {"mode": "allowlist", "allow": ["api.test", "other.test"]}}
    r = env["client"].post("/v1/sandboxes", json={"profile": prof, "secrets": list(secrets)})
    assert r.status_code == 201, r.text
    env["made"].append(r.json()["id"])
    return r.json()["id"]


def sh(env, sid, script, timeout="60s"):
    r = env["client"].post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["sh", "-c", script], "timeout": timeout})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_secret_hosts_get_the_value_over_https_and_http_and_no_one_else_does(env):
    sid = make_sandbox(env, secrets=("API_KEY", "TOKEN"))
    h, p, o = env["https"].port, env["plain"].port, env["other"].port
    out = sh(env, sid, f"""
echo "$API_KEY"
curl -sS -m 10 -H "Authorization: Bearer $API_KEY" https://api.test:{h}/s; echo
curl -sS -m 10 -H "Authorization: Bearer $API_KEY" http://api.test:{p}/p; echo
curl -sS -m 10 -H "Authorization: Bearer $API_KEY" http://other.test:{o}/o; echo
curl -sS -m 10 -H "Authorization: Bearer $API_KEY" http://api.test:{o}/unnamed-port; echo
""")
    lines = out["stdout"].split("\n")
    placeholder = lines[0]
    assert placeholder.startswith("sbx_secret_") and VALUE not in placeholder
    tls_seen, plain_seen, other_seen, port_seen = (json.loads(l) for l in lines[1:5])
    assert tls_seen["Authorization"] == f"Bearer {VALUE}" and tls_seen["X-Api-Token"] == "tok tokvalue-91b2"
    # http://api.test:PLAIN is named for API_KEY; TOKEN names https only, so plain HTTP gets no TOKEN.
    assert plain_seen["Authorization"] == f"Bearer {VALUE}" and "X-Api-Token" not in plain_seen, plain_seen
    assert other_seen["Authorization"] == f"Bearer {placeholder}" and "X-Api-Token" not in other_seen
    # The secret's own host on a port it does not name keeps the placeholder.
    assert port_seen["Authorization"] == f"Bearer {placeholder}" and "X-Api-Token" not in port_seen, port_seen
    # The value is nowhere in the sandbox: environment, process arguments, files.
    # The pattern is put together in a file under /dev (not searched), so no command line carries it.
    half = len(VALUE) // 2
    out = sh(env, sid, f"""
printf '%s%s' '{VALUE[:half]}' '{VALUE[half:]}' > /dev/shm/pattern
env | grep -c -F -f /dev/shm/pattern
cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -c -F -f /dev/shm/pattern
grep -rlF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev -f /dev/shm/pattern / 2>/dev/null | wc -l
""", timeout="300s")
    assert out["stdout"].split() == ["0", "0", "0"], out
    # Nor in what the server keeps: the exec record, the audit trail (names and hosts only).
    trail = env["client"].get(f"/v1/sandboxes/{sid}/audit").text
    assert VALUE not in trail and "tokvalue-91b2" not in trail
    events = [json.loads(l) for l in trail.splitlines() if l.strip()]
    subs = [e["detail"] for e in events if e["kind"] == "secret.substitute"]
    assert {"secret": "API_KEY", "host": "api.test"} in subs
    sent = [e["detail"] for e in events if e["kind"] == "secret.placeholder_sent"]
    assert any(d["secret"] == "API_KEY" and d["host"] == "other.test" for d in sent)
    record = env["client"].get(f"/v1/sandboxes/{sid}").text
    assert VALUE not in record
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_https_to_a_host_without_secrets_passes_through_untouched(env):
    # other.test has no secret: CONNECT is tunnelled, so the sandbox sees the upstream's own
    # certificate, which it does not trust (no interception).
    sid = make_sandbox(env)
    out = sh(env, sid, f"curl -sS -m 10 https://other.test:{env['https'].port}/ 2>&1; echo rc=$?")
    assert "rc=60" in out["stdout"] or "certificate" in out["stdout"], out
    env["client"].delete(f"/v1/sandboxes/{sid}")


def test_no_substitution_is_recorded_when_the_upstream_certificate_is_refused(env):
    sid = make_sandbox(env)
    u = env["untrusted"].port

    def substitutions():
        trail = env["client"].get(f"/v1/sandboxes/{sid}/audit").text
        return [json.loads(l) for l in trail.splitlines() if l.strip() and json.loads(l)["kind"] == "secret.substitute"]

    before = len(substitutions())
    out = sh(env, sid, f'curl -sS -m 10 -o /dev/null -w "%{{http_code}}" -H "Authorization: Bearer $API_KEY" https://api.test:{u}/x')
    assert out["stdout"] != "200", out
    assert env["untrusted"].seen == [], "nothing reached an upstream whose certificate was refused"
    time.sleep(0.5)
    assert len(substitutions()) == before, "secret.substitute was recorded for a request that never went out"


def test_a_secret_the_server_does_not_hold_fails_the_create_naming_it(env):
    r = env["client"].post("/v1/sandboxes", json={"profile": "default", "secrets": ["NOT_HELD"]})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request" and "NOT_HELD" in r.json()["detail"], r.text


def test_another_tenant_cannot_get_a_tenants_secret_by_naming_it(env):
    server = env["server"]
    other = subprocess.run([BIN, "key", "create", "--tenant", "mallory", "--data", server.data], check=True,
                           capture_output=True, text=True).stdout.strip()
    with httpx.Client(base_url=server.url, headers=auth(other), timeout=TIMEOUT) as mallory:
        prof = {"name": "steal", "network": {"mode": "allowlist", "allow": ["api.test"]}}
        r = mallory.post("/v1/sandboxes", json={"profile": prof, "secrets": ["API_KEY"]})
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
        detail = r.json()["detail"]
        assert "'API_KEY'" in detail and "known: TOKEN" in detail, detail  # shared ones only, not the other tenant's names
        # The shared secret is every tenant's to use.
        r = mallory.post("/v1/sandboxes", json={"profile": prof, "secrets": ["TOKEN"]})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        try:
            r = mallory.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": ["sh", "-c", "echo $TOKEN; echo ${API_KEY:-unset}"]})
            out = r.json()["stdout"].split()
            assert out[0].startswith("sbx_secret_") and out[1] == "unset", out
        finally:
            mallory.delete(f"/v1/sandboxes/{sid}")
        # A one-shot run of that tenant is held to the same rule.
        r = mallory.post("/v1/runs", json={"cmd": ["true"], "profile": prof, "secrets": ["API_KEY"]})
        if r.status_code == 202:
            rid = r.json()["id"]
            for _ in range(300):
                run = mallory.get(f"/v1/runs/{rid}").json()
                if run["state"] in FINAL_RUN_STATES:
                    break
                time.sleep(0.2)
            assert run["state"] != "succeeded" and "API_KEY" in json.dumps(run), run
        else:
            assert r.status_code == 400 and "API_KEY" in r.text, r.text


def test_secret_list_never_prints_values(env):
    r = subprocess.run([BIN, "secret", "list", "--data", env["server"].data], capture_output=True, text=True)
    assert r.returncode == 0 and "API_KEY" in r.stdout and "api.test" in r.stdout
    assert VALUE not in r.stdout and VALUE not in r.stderr


def test_serve_sets_secrets_from_a_private_file_at_start(tmp_path):
    path = tmp_path / "secrets"
    path.write_text("FROM_FILE=file-value-3e1 hosts=api.test header=X-Key: {value}\n"
                    "OWN=own-value-77 tenant=secrets hosts=api.test\n")
    os.chmod(path, 0o600)
    server, key = own_server("sbx-secrets-file-", "secrets", args=["--secrets-file", str(path)])
    try:
        r = subprocess.run([BIN, "secret", "list", "--json", "--data", server.data], capture_output=True, text=True)
        listed = json.loads(r.stdout)
        assert [(s["scope"], s["name"]) for s in listed] == [("shared", "FROM_FILE"), ("secrets", "OWN")], listed
        assert "file-value-3e1" not in r.stdout and "own-value-77" not in r.stdout
    finally:
        drop_server(server)
    os.chmod(path, 0o644)
    r = subprocess.run([BIN, "serve", "--data", str(tmp_path / "d"), "--port", "0", "--secrets-file", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "chmod 600" in r.stderr, r.stderr
