"""Fixtures of the E2B SDK suite: the unmodified `e2b` / `e2b-code-interpreter` SDKs drive a live
`sandboxer serve` (started by scripts/api-tests.sh, which runs this directory once per pinned SDK
pair, each in its own virtualenv made by scripts/e2b-sdk.sh).

Environment: E2B_API_URL (= E2B_SANDBOX_URL, the server's URL), E2B_API_KEY and E2B_API_KEY_B
(e2b-shaped keys of two tenants: `sandboxer key create --tenant T --e2b`). SANDBOXER_URL,
SANDBOXER_API_KEY and SANDBOXER_API_KEY_B are read when the E2B names are unset.
"""
import os

import httpx
import pytest
import pytest_asyncio

URL = os.environ.get("E2B_API_URL") or os.environ.get("SANDBOXER_URL", "http://127.0.0.1:7070")
KEY_A = os.environ.get("E2B_API_KEY") or os.environ.get("SANDBOXER_API_KEY", "")
KEY_B = os.environ.get("E2B_API_KEY_B") or os.environ.get("SANDBOXER_API_KEY_B", "")

# What the SDKs read: one URL serves the control plane and the sandbox plane.
os.environ.setdefault("E2B_API_URL", URL)
os.environ.setdefault("E2B_SANDBOX_URL", URL)
os.environ.setdefault("E2B_API_KEY", KEY_A)
if not KEY_A.startswith("e2b_"):
    os.environ["E2B_VALIDATE_API_KEY"] = "false"  # a sandboxer-shaped key works too

ENVD_PORT = "49983"


def plane_headers(sandbox_id, **extra):
    """The headers of a raw request to a sandbox's envd through the server (as the SDKs send them)."""
    return {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": ENVD_PORT, **extra}


def create_v1(key, body=None):
    """Creates a sandbox through sandboxer's own API (`/v1`) and returns its id."""
    r = httpx.post(f"{URL}/v1/sandboxes", json=body or {}, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def delete_v1(key, sandbox_id):
    httpx.delete(f"{URL}/v1/sandboxes/{sandbox_id}", headers={"Authorization": f"Bearer {key}"}, timeout=120)


def attach(sandbox_cls, sandbox_id, key, envd_version="0.6.4"):
    """An SDK sandbox object for an existing sandbox, talking to our one URL with the sandbox-plane
    headers and the tenant's key instead of an envd access token (for a sandbox made through /v1)."""
    from e2b import ConnectionConfig
    from packaging.version import Version

    headers = {**plane_headers(sandbox_id), "X-API-KEY": key}
    config = ConnectionConfig(sandbox_url=URL, api_url=URL, extra_sandbox_headers=headers)
    return sandbox_cls(sandbox_id=sandbox_id, envd_version=Version(envd_version), envd_access_token=None,
                       sandbox_domain=None, connection_config=config)


@pytest.fixture
def sandbox():
    """A fresh sandbox of tenant A from the sync SDK's `Sandbox.create()`; killed after the test."""
    from e2b import Sandbox

    sbx = Sandbox.create(timeout=300)
    try:
        yield sbx
    finally:
        Sandbox.kill(sbx.sandbox_id)


@pytest_asyncio.fixture
async def async_sandbox():
    """A fresh sandbox of tenant A from the async SDK's `AsyncSandbox.create()`; killed after the test."""
    from e2b import AsyncSandbox

    sbx = await AsyncSandbox.create(timeout=300)
    try:
        yield sbx
    finally:
        await AsyncSandbox.kill(sbx.sandbox_id)
