"""E2B's control plane driven by the unmodified SDK (sync and async): create, connect, list with
paging, set_timeout, get_info, is_running, pause, kill; unknown templates, wrong keys, another
tenant's sandboxes and wrong envd access tokens are refused the way the SDK expects."""
import datetime
import uuid

import httpx
import pytest
from e2b import AsyncSandbox, ConnectionConfig, Sandbox, SandboxQuery, SandboxState
from e2b.exceptions import AuthenticationException, NotFoundException, SandboxException
from packaging.version import Version

from conftest import KEY_A, KEY_B, URL, plane_headers

WRONG_KEY = "e2b_" + "0" * 40


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def test_create_returns_a_running_sandbox_with_its_info(sandbox):
    info = sandbox.get_info()
    assert info.sandbox_id == sandbox.sandbox_id
    assert info.template_id == "base"
    assert info.state == SandboxState.RUNNING
    assert info.envd_version == "0.6.4" and sandbox._envd_version == Version("0.6.4")
    assert info.cpu_count >= 1 and info.memory_mb > 0
    assert 250 < (info.end_at - now()).total_seconds() <= 300, "timeout=300 is the sandbox's TTL"
    assert sandbox._envd_access_token and len(sandbox._envd_access_token) == 64
    assert sandbox.is_running()


def test_metadata_and_env_vars_reach_the_sandbox():
    sbx = Sandbox.create(metadata={"owner": "test", "n": "1"}, envs={"GREETING": "hi"}, timeout=60)
    try:
        assert sbx.get_info().metadata == {"owner": "test", "n": "1"}
        v1 = httpx.get(f"{URL}/v1/sandboxes/{sbx.sandbox_id}", headers={"Authorization": f"Bearer {KEY_A}"}).json()
        assert v1["metadata"] == {"owner": "test", "n": "1"}, "the same sandbox through /v1"
    finally:
        sbx.kill()


def test_list_pages_with_limit_and_next_token():
    tag = uuid.uuid4().hex
    made = [Sandbox.create(metadata={"suite": tag, "i": str(i)}, timeout=120) for i in range(3)]
    try:
        paginator = Sandbox.list(query=SandboxQuery(metadata={"suite": tag}), limit=2)
        pages = []
        while paginator.has_next:
            pages.append([s.sandbox_id for s in paginator.next_items()])
        assert [len(p) for p in pages] == [2, 1]
        assert sorted(sum(pages, [])) == sorted(s.sandbox_id for s in made)
        one = Sandbox.list(query=SandboxQuery(metadata={"suite": tag, "i": "1"})).next_items()
        assert [s.sandbox_id for s in one] == [made[1].sandbox_id]
        running = Sandbox.list(query=SandboxQuery(metadata={"suite": tag}, state=[SandboxState.RUNNING])).next_items()
        assert len(running) == 3
    finally:
        for s in made:
            s.kill()


def test_set_timeout_moves_the_end(sandbox):
    sandbox.set_timeout(900)
    assert (sandbox.get_info().end_at - now()).total_seconds() > 800
    Sandbox.set_timeout(sandbox.sandbox_id, 60)
    assert (Sandbox.get_info(sandbox.sandbox_id).end_at - now()).total_seconds() <= 60


def test_connect_gives_a_working_sandbox_with_its_own_token(sandbox):
    again = Sandbox.connect(sandbox.sandbox_id)
    assert again.sandbox_id == sandbox.sandbox_id
    assert again._envd_access_token and again._envd_access_token != sandbox._envd_access_token
    assert again.commands.run("true").exit_code == 0 and sandbox.commands.run("true").exit_code == 0, "both tokens work"


def test_pause_then_connect_resumes(sandbox):
    assert sandbox.pause() is True
    assert sandbox.get_info().state == SandboxState.PAUSED
    assert Sandbox.pause(sandbox.sandbox_id) is False, "already paused"
    resumed = Sandbox.connect(sandbox.sandbox_id)
    assert resumed.get_info().state == SandboxState.RUNNING


def test_kill_ends_the_sandbox():
    sbx = Sandbox.create(timeout=60)
    assert sbx.kill() is True
    assert not sbx.is_running()
    assert Sandbox.kill(sbx.sandbox_id) is False
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sbx.sandbox_id)
    assert sbx.sandbox_id not in [s.sandbox_id for s in Sandbox.list().next_items()]


def test_unknown_template_is_a_404():
    with pytest.raises(SandboxException) as e:
        Sandbox.create(template="no-such-template-" + uuid.uuid4().hex[:6])
    assert "404" in str(e.value) and "no-such-template" in str(e.value)


def test_wrong_api_key_is_refused():
    with pytest.raises(AuthenticationException):
        Sandbox.create(api_key=WRONG_KEY)
    with pytest.raises(AuthenticationException):
        Sandbox.list(api_key=WRONG_KEY).next_items()


@pytest.mark.skipif(not KEY_B, reason="E2B_API_KEY_B (a key of a second tenant) is unset")
def test_another_tenant_cannot_see_kill_or_connect(sandbox):
    sid = sandbox.sandbox_id
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sid, api_key=KEY_B)
    assert Sandbox.kill(sid, api_key=KEY_B) is False
    with pytest.raises(NotFoundException):
        Sandbox.connect(sid, api_key=KEY_B)
    with pytest.raises(NotFoundException):
        Sandbox.set_timeout(sid, 30, api_key=KEY_B)
    assert sid not in [s.sandbox_id for s in Sandbox.list(api_key=KEY_B).next_items()]
    # Nor through the sandbox plane: another tenant's key finds no such sandbox.
    r = httpx.get(f"{URL}/health", headers=plane_headers(sid, **{"X-API-KEY": KEY_B}))
    assert r.status_code == 502 and "was not found" in r.text
    assert sandbox.commands.run("echo still here").stdout == "still here\n", "untouched"


def test_a_wrong_access_token_is_refused_on_envd(sandbox):
    sid = sandbox.sandbox_id
    r = httpx.get(f"{URL}/health", headers=plane_headers(sid, **{"X-Access-Token": "0" * 64}))
    assert r.status_code == 401, r.text
    r = httpx.get(f"{URL}/health", headers=plane_headers(sid))
    assert r.status_code == 401, "no token and no key: refused"
    config = ConnectionConfig(extra_sandbox_headers=plane_headers(sid, **{"X-Access-Token": "0" * 64}))
    forged = Sandbox(sandbox_id=sid, envd_version=Version("0.6.4"), envd_access_token="0" * 64,
                     sandbox_domain=None, connection_config=config)
    with pytest.raises(AuthenticationException):
        forged.is_running()
    with pytest.raises(AuthenticationException):
        forged.commands.run("true")
    assert sandbox.commands.run("true").exit_code == 0, "the real token still works"


def test_idempotency_key_returns_the_same_sandbox():
    headers = {"X-API-KEY": KEY_A, "Idempotency-Key": uuid.uuid4().hex}
    first = httpx.post(f"{URL}/sandboxes", json={"templateID": "base", "timeout": 60}, headers=headers, timeout=120)
    again = httpx.post(f"{URL}/sandboxes", json={"templateID": "base", "timeout": 60}, headers=headers, timeout=120)
    try:
        assert first.status_code == again.status_code == 201, first.text
        assert first.json()["sandboxID"] == again.json()["sandboxID"]
    finally:
        Sandbox.kill(first.json()["sandboxID"])


async def test_async_create_info_list_timeout_connect_kill(async_sandbox):
    info = await async_sandbox.get_info()
    assert info.state == SandboxState.RUNNING and info.template_id == "base"
    assert await async_sandbox.is_running()
    tag = uuid.uuid4().hex
    more = [await AsyncSandbox.create(metadata={"suite": tag}, timeout=60) for _ in range(3)]
    try:
        paginator = AsyncSandbox.list(query=SandboxQuery(metadata={"suite": tag}), limit=2)
        seen = []
        while paginator.has_next:
            seen += [s.sandbox_id for s in await paginator.next_items()]
        assert sorted(seen) == sorted(s.sandbox_id for s in more)
    finally:
        for s in more:
            await s.kill()
    await async_sandbox.set_timeout(900)
    assert ((await async_sandbox.get_info()).end_at - now()).total_seconds() > 800
    again = await AsyncSandbox.connect(async_sandbox.sandbox_id)
    assert again.sandbox_id == async_sandbox.sandbox_id
    assert (await again.commands.run("true")).exit_code == 0 and (await async_sandbox.commands.run("true")).exit_code == 0


async def test_async_errors():
    with pytest.raises(AuthenticationException):
        await AsyncSandbox.create(api_key=WRONG_KEY)
    with pytest.raises(SandboxException):
        await AsyncSandbox.create(template="no-such-template")
    sbx = await AsyncSandbox.create(timeout=60)
    assert await sbx.kill() is True
    assert await AsyncSandbox.kill(sbx.sandbox_id) is False
    assert not await sbx.is_running()
    with pytest.raises(NotFoundException):
        await AsyncSandbox.get_info(sbx.sandbox_id)


@pytest.mark.parametrize("on_timeout", ["pause", {"action": "pause", "keep_memory": False}])
def test_auto_pause_at_the_timeout_keeps_the_sandbox_and_connect_resumes_it(on_timeout):
    # autoPause (the SDK's lifecycle on_timeout "pause"): at the timeout the sandbox is paused
    # (with memory) or, without memory, hibernated — listed as paused either way — never killed;
    # connect resumes it with its files.
    import time

    sbx = Sandbox.create(timeout=2, lifecycle={"on_timeout": on_timeout})
    try:
        sbx.files.write("/home/user/kept.txt", "kept")
        deadline = time.monotonic() + 60
        while sbx.get_info().state != SandboxState.PAUSED:
            assert time.monotonic() < deadline, "not paused at its timeout"
            time.sleep(0.2)
        time.sleep(1.0)
        assert sbx.get_info().state == SandboxState.PAUSED, "a paused sandbox outlives its ended timeout"
        again = Sandbox.connect(sbx.sandbox_id, timeout=60)
        assert again.get_info().state == SandboxState.RUNNING
        assert again.files.read("/home/user/kept.txt") == "kept"
        assert again.commands.run("echo hi").stdout == "hi\n"
    finally:
        Sandbox.kill(sbx.sandbox_id)
