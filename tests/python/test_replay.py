"""Replay records and replays (issue 21) on the live server, in the WASM lane (the Swift tests in
Tests/ServerTests/RunReplayTests.swift cover the container lane, template changes and 409s):
GET /v1/runs/{id}/record, POST /v1/runs/{id}/replay and `sandboxer replay`.
"""
import hashlib
import os
import subprocess

from conftest import BIN, KEY_A, URL, assert_problem, require_root, submit_run, wait_run


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def deterministic_js(client):
    run = submit_run(client, isolation="wasm", lang="js", code="let h = 7; for (let i = 0; i < 20000; i++) h = (h * 31 + i) % 1000003; console.log('checksum', h);",
                     env={"API_TOKEN": "tok-9b8a7c6d5e4f"}, labels={"suite": "replay-py"})
    done = wait_run(client, run["id"])
    assert done["state"] == "succeeded", done
    return done


def test_wasm_js_record_and_replay_match_byte_for_byte(client, client_b):
    require_root()
    run = deterministic_js(client)
    stdout = run["result"]["stdout"].encode()
    assert stdout.startswith(b"checksum ")

    r = client.get(f"/v1/runs/{run['id']}/record")
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["run_id"] == run["id"] and record["isolation"] == "wasm"
    assert record["template"]["digest"] is None and "WASM" in record["template"]["digest_note"], record["template"]
    engines = record["engines"]
    assert engines["runtime"] is None and engines["wasmkit"] and engines["quickjs"] and engines["sandboxer"], engines
    assert record["output"]["stdout_digest"] == sha256(stdout) and record["output"]["stdout_bytes"] == len(stdout)
    assert record["env_names"] == ["API_TOKEN"] and "tok-9b8a7c6d5e4f" not in r.text
    assert record["replay_of"] is None and record["output_matches"] is None

    # Another tenant: neither the record nor a replay.
    assert_problem(client_b.get(f"/v1/runs/{run['id']}/record"), 404, "not_found")
    assert_problem(client_b.post(f"/v1/runs/{run['id']}/replay"), 404, "not_found")

    r = client.post(f"/v1/runs/{run['id']}/replay")
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["replay_of"] == run["id"] and queued["labels"] == {"suite": "replay-py", "replay_of": run["id"]}
    replay = wait_run(client, queued["id"])
    assert replay["state"] == "succeeded" and replay["result"]["stdout"].encode() == stdout, replay
    assert replay["replay_of"] == run["id"] and replay["output_matches"] is True and replay["changes"] == [], replay


def test_cli_replay_prints_the_comparison_and_exits_0_on_a_match(client):
    require_root()
    assert BIN and os.path.exists(BIN), "SANDBOXER_BIN is not set"
    run = deterministic_js(client)
    cli = subprocess.run([BIN, "replay", run["id"], "--server", URL, "--api-key", KEY_A], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, (cli.stdout, cli.stderr)
    assert "output matches: yes" in cli.stdout and "changes: none" in cli.stdout, cli.stdout
    assert sha256(run["result"]["stdout"].encode()) in cli.stdout, cli.stdout
