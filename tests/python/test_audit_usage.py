"""The tenant audit trail (GET /v1/audit) and metering (GET /v1/usage, the per-tenant Prometheus
series) over HTTP, on a server of this file's own (its own tenants, keys and /metrics reader)."""
import json
import re
import subprocess

import httpx
import pytest

from conftest import BIN, TIMEOUT, assert_problem, auth, drop_server, own_server

BURN = ["sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done"]


@pytest.fixture(scope="module")
def env():
    server, key = own_server("audit-usage", "au-ops", args=["--metrics-tenant", "au-ops"])
    other = subprocess.run([BIN, "key", "create", "--tenant", "au-other", "--data", server.data], check=True,
                           capture_output=True, text=True).stdout.strip()
    with httpx.Client(base_url=server.url, headers=auth(key), timeout=TIMEOUT) as a, \
            httpx.Client(base_url=server.url, headers=auth(other), timeout=TIMEOUT) as b:
        yield {"server": server, "a": a, "b": b}
    drop_server(server)


def lines(r):
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(l) for l in r.text.splitlines() if l]


def test_tenant_trail_has_cli_key_creation_and_sandbox_changes_only_for_its_tenant(env):
    a, b = env["a"], env["b"]
    trail = lines(a.get("/v1/audit"))
    assert [e["kind"] for e in trail][:1] == ["key.create"], trail
    first = trail[0]
    assert set(first) == {"seq", "at", "sandbox_id", "kind", "actor", "correlation", "detail"}
    assert first["seq"] == 1 and first["actor"] == "cli" and first["sandbox_id"] is None
    assert first["detail"]["key_id"].startswith("key_")

    r = a.post("/v1/sandboxes", json={"ttl": "5m"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert a.delete(f"/v1/sandboxes/{sid}").status_code == 200
    trail = lines(a.get("/v1/audit"))
    mine = [(e["kind"], e["detail"].get("status")) for e in trail if e["sandbox_id"] == sid]
    assert mine == [("sandbox.create", 201), ("sandbox.delete", 200)], trail
    assert [e["seq"] for e in trail] == list(range(1, len(trail) + 1))
    # Paging as a sandbox's trail pages.
    assert [e["seq"] for e in lines(a.get("/v1/audit", params={"after": 1, "limit": 1}))] == [2]

    theirs = lines(b.get("/v1/audit"))
    assert [e["kind"] for e in theirs] == ["key.create"] and all(e["sandbox_id"] != sid for e in theirs)

    assert_problem(a.get("/v1/audit", params={"limit": "0"}), 400, "invalid_request")
    assert a.get("/v1/audit", params={"after": "x"}).json()["field"] == "after"


def test_usage_counts_cpu_burnt_in_a_sandbox_and_prometheus_has_the_tenant_series(env):
    a, b = env["a"], env["b"]
    r = a.post("/v1/sandboxes", json={"ttl": "5m"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        r = a.post(f"/v1/sandboxes/{sid}/exec", json={"cmd": BURN})
        assert r.status_code == 200 and r.json()["stdout"] == "done\n", r.text
        usage = a.get("/v1/usage", params={"group_by": "sandbox"})
        assert usage.status_code == 200, usage.text
        body = usage.json()
        assert body["group_by"] == "sandbox"
        group = next(g for g in body["groups"] if g["key"] == sid)
        assert group["cpu_seconds"] > 0.05 and group["execs"] == 1 and group["sandbox_seconds"] > 0, group
        assert group["memory_gib_seconds"] > 0
        assert body["total"]["cpu_seconds"] >= group["cpu_seconds"]
        by_day = a.get("/v1/usage").json()
        assert by_day["group_by"] == "day" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", by_day["groups"][-1]["key"])
        # A file operation: one agent call (sandboxer_agent_call_seconds).
        assert a.get(f"/v1/sandboxes/{sid}/files/list", params={"path": "/workspace"}).status_code == 200
        # Another tenant sees none of it.
        assert b.get("/v1/usage", params={"group_by": "sandbox"}).json()["groups"] == []
    finally:
        a.delete(f"/v1/sandboxes/{sid}")

    metrics = a.get("/metrics")
    assert metrics.status_code == 200, metrics.text
    text = metrics.text
    cpu = re.findall(r'^sandboxer_tenant_cpu_seconds_total\{tenant="(tnt_[^"]+)"\} ([0-9.e+-]+)$', text, re.M)
    assert cpu and float(cpu[0][1]) > 0, text[:2000]
    assert re.search(r'^sandboxer_tenant_execs_total\{tenant="tnt_[^"]+"\} [1-9]', text, re.M)
    assert re.search(r"^sandboxer_http_connections [0-9]", text, re.M)
    for series in ["sandboxer_store_write_seconds_count", "sandboxer_store_call_seconds_count", "sandboxer_agent_call_seconds_count"]:
        assert re.search(r"^" + series + r" [1-9]", text, re.M), series


@pytest.mark.parametrize("params,field", [({"group_by": "week"}, "group_by"), ({"since": "yesterday"}, "since"),
                                          ({"since": "2026-12-06", "until": "2026-12-05"}, "since"), ({"x": "1"}, "x")])
def test_usage_bad_parameters_are_named(env, params, field):
    r = env["a"].get("/v1/usage", params=params)
    assert_problem(r, 400, "invalid_request")
    assert r.json()["field"] == field
