"""Fixtures of the E2B SDK suite: the unmodified `e2b` / `e2b-code-interpreter` SDKs drive a live
`sandboxer serve` (started by scripts/api-tests.sh, which runs this directory once per pinned SDK
version, each in its own virtualenv).

Environment: SANDBOXER_URL, SANDBOXER_API_KEY, SANDBOXER_API_KEY_B (sandboxer keys of two tenants).
"""
import os

import httpx
import pytest

URL = os.environ.get("SANDBOXER_URL", "http://127.0.0.1:7070")
KEY_A = os.environ.get("SANDBOXER_API_KEY", "")
KEY_B = os.environ.get("SANDBOXER_API_KEY_B", "")


def create_v1(key, body=None):
    """Creates a sandbox through sandboxer's own API (`/v1`) and returns its id."""
    r = httpx.post(f"{URL}/v1/sandboxes", json=body or {}, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def delete_v1(key, sandbox_id):
    httpx.delete(f"{URL}/v1/sandboxes/{sandbox_id}", headers={"Authorization": f"Bearer {key}"}, timeout=120)


def attach(sandbox_cls, sandbox_id, key, envd_version="0.6.4"):
    """An SDK sandbox object for an existing sandbox, talking to our one URL with the sandbox-plane
    headers (interim, until the control plane's create returns them: then use `Sandbox.create()`)."""
    from e2b import ConnectionConfig
    from packaging.version import Version

    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": "49983", "X-API-KEY": key}
    config = ConnectionConfig(sandbox_url=URL, api_url=URL, extra_sandbox_headers=headers)
    return sandbox_cls(sandbox_id=sandbox_id, envd_version=Version(envd_version), envd_access_token=None,
                       sandbox_domain=None, connection_config=config)


@pytest.fixture
def sandbox():
    """A fresh sandbox of tenant A as the sync SDK's `Sandbox`; deleted after the test."""
    from e2b import Sandbox

    sandbox_id = create_v1(KEY_A)
    try:
        yield attach(Sandbox, sandbox_id, KEY_A)
    finally:
        delete_v1(KEY_A, sandbox_id)
