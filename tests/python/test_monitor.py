"""The execution monitor (/monitor) in a real browser: Debian's headless Chromium driven by Selenium.

Logs in with an API key, watches runs submitted through the HTTP API appear and finish without a
reload, cancels a long run from the page, and writes a screenshot to .build/monitor.png. Also: a wrong
key shows the error, and /monitor/ws refuses a socket without a session or from another origin.
"""
import asyncio
import json
import os
import pathlib
import shutil
import time

import httpx
import pytest

from conftest import KEY_A, TIMEOUT, URL, require_root

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = pathlib.Path(__file__).resolve().parents[2] / ".build" / "monitor.png"


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)):
        pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or driver
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,950"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def anon():
    """A client of its own (no cookies shared with other tests)."""
    with httpx.Client(base_url=URL, timeout=TIMEOUT) as c:
        yield c


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the element may be replaced while we look at it
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def log_in(driver, key):
    from selenium.webdriver.common.by import By

    driver.get(f"{URL}/monitor")
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "login").click()


def row_state(driver, row_id):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.ID, f"row-{row_id}")
    return rows[0].get_attribute("data-state") if rows else None


def test_wrong_key_shows_the_error(browser, anon):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    log_in(browser, "sbx_not-a-real-key")
    error = wait_for(lambda: browser.find_element(By.ID, "login-error"), what="the login error")
    assert "unknown or revoked" in error.text
    assert browser.find_elements(By.ID, "key"), "the login form is shown again"
    r = anon.post("/monitor/login", data={"key": "sbx_not-a-real-key"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in r.headers


def test_login_sets_a_strict_httponly_cookie_and_logout_ends_it(anon):
    if not KEY_A:
        pytest.skip("SANDBOXER_API_KEY is not set")
    r = anon.post("/monitor/login", data={"key": KEY_A})
    assert r.status_code == 303 and r.headers["location"] == "/monitor"
    cookie = r.headers["set-cookie"]
    for attribute in ("sandboxer_session=", "HttpOnly", "SameSite=Strict", "Path=/monitor"):
        assert attribute in cookie, cookie
    assert KEY_A not in cookie and KEY_A not in r.text
    session = {"Cookie": f"sandboxer_session={r.cookies['sandboxer_session']}"}
    page = anon.get("/monitor", headers=session)
    assert page.status_code == 200 and 'src="/monitor/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert KEY_A not in page.text
    # A cross-site form post is refused.
    assert anon.post("/monitor/logout", headers={**session, "Origin": "https://evil.example"}).status_code == 403
    out = anon.post("/monitor/logout", headers=session)
    assert out.status_code == 303
    assert 'id="key"' in anon.get("/monitor", headers=session).text, "the session ended"


def ws_first_message(path, headers):
    import websockets

    async def go():
        url = URL.replace("http://", "ws://") + path
        try:
            connect = websockets.connect(url, additional_headers=headers)
        except TypeError:  # older websockets
            connect = websockets.connect(url, extra_headers=headers)
        async with connect as ws:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return message, closed.rcvd.code if closed.rcvd else None
            return message, None

    return asyncio.run(go())


def test_ws_refuses_without_a_session_or_from_another_origin(anon):
    r = anon.get("/monitor/ws")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    message, code = ws_first_message("/monitor/ws", {"Origin": URL})
    assert message["type"] == "error" and message["problem"]["code"] == "unauthorized", message
    assert code == 1008
    if not KEY_A:
        return
    login = anon.post("/monitor/login", data={"key": KEY_A})
    cookie = f"sandboxer_session={login.cookies['sandboxer_session']}"
    message, code = ws_first_message("/monitor/ws", {"Origin": "https://evil.example", "Cookie": cookie})
    assert message["type"] == "error", message
    assert code == 1008
    message, _ = ws_first_message("/monitor/ws", {"Origin": URL, "Cookie": cookie})
    assert message["type"] == "snapshot" and message["tenant"] == "api-tests-a", message
    anon.post("/monitor/logout", headers={"Cookie": cookie})


def test_sandboxes_appear_and_end_live(browser, client):
    require_root()
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    log_in(browser, KEY_A)
    wait_for(lambda: browser.find_element(By.ID, "conn").text == "live", what="the live connection")
    r = client.post("/v1/sandboxes", json={"ttl": "5m", "metadata": {"suite": "monitor"}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        wait_for(lambda: row_state(browser, sid) == "running", what=f"{sid} running in the table")
        row = browser.find_element(By.ID, f"row-{sid}")
        assert row.get_attribute("data-kind") == "sandbox" and "container" in row.text, row.text
    finally:
        client.delete(f"/v1/sandboxes/{sid}")
    wait_for(lambda: row_state(browser, sid) in (None, "destroyed"), what=f"{sid} destroyed in the table")


def submit(client, cmd):
    r = client.post("/v1/runs", json={"cmd": cmd})
    if r.status_code == 404 and "no route" in r.text.lower():
        pytest.skip("this server does not serve /v1/runs yet")
    assert r.status_code == 202, (r.status_code, r.text)
    body = r.json()
    assert body["state"] == "queued" and body["id"].startswith("run-"), body
    return body["id"]


def test_runs_live_cancel_from_the_page_and_screenshot(browser, client):
    require_root()
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    log_in(browser, KEY_A)
    wait_for(lambda: browser.find_element(By.ID, "conn").text == "live", what="the live connection")
    url_before = browser.current_url

    quick = submit(client, ["sh", "-c", "echo hi"])
    wait_for(lambda: row_state(browser, quick) is not None, what=f"{quick} in the table")
    wait_for(lambda: row_state(browser, quick) == "succeeded", timeout=90, what=f"{quick} succeeded")
    row = browser.find_element(By.ID, f"row-{quick}")
    assert "succeeded" in row.text and "sh -c echo hi" in row.text, row.text

    failing = submit(client, ["sh", "-c", "echo oops >&2; exit 3"])
    wait_for(lambda: row_state(browser, failing) == "failed", timeout=90, what=f"{failing} failed")
    assert "exit 3" in browser.find_element(By.ID, f"row-{failing}").text

    long = submit(client, ["sleep", "300"])
    wait_for(lambda: row_state(browser, long) == "running", timeout=90, what=f"{long} running")
    browser.find_element(By.CSS_SELECTOR, f"#row-{long} button.cancel").click()
    wait_for(lambda: row_state(browser, long) == "cancelled", timeout=90, what=f"{long} cancelled from the page")
    assert client.get(f"/v1/runs/{long}").json()["state"] == "cancelled"
    assert browser.current_url == url_before, "no reload or navigation"

    # The detail pane: attempts and the output of the quick run.
    browser.find_element(By.ID, f"row-{quick}").click()
    wait_for(lambda: "hi" in browser.find_element(By.ID, "d-log").text, what="the run's output in the detail pane")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#d-attempts tbody tr"), what="the attempts")
    wait_for(lambda: int(browser.find_element(By.ID, "c-succeeded").text) >= 1, timeout=15, what="the succeeded counter")
    wait_for(lambda: int(browser.find_element(By.ID, "c-failed").text) >= 1, timeout=15, what="the failed counter")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
