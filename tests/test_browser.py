"""The devices app in a real browser: headless Chromium driven by Selenium
against uvicorn serving examples/devices_app.py on 127.0.0.1.

Two browsers (separate profiles) log in as alice; each devices page lists
both; one revokes the other; the other's next page load lands on /login.
Screenshots of both pages go to tests/artifacts/browser/.

Uses Debian's `chromium` and `chromium-driver` as installed (nothing is
downloaded: Selenium is pointed at both binaries, so Selenium Manager never
runs). Without them the test is skipped, saying why, or fails when the
environment variable CI is set (.ci/run installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from examples.devices_app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts" / "browser"
NO_BROWSER = (
    "Chromium and its driver are not installed: the browser test needs "
    f"{CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver; "
    ".ci/run installs them)."
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,700",
]


def require_browser() -> None:
    if all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER)):
        return
    if os.environ.get("CI"):
        pytest.fail(NO_BROWSER)
    pytest.skip(NO_BROWSER)


@pytest.fixture
def server() -> Iterator[str]:
    """uvicorn serving the example app on a free loopback port; its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(), log_level="warning", lifespan="off")
    serving = uvicorn.Server(config)
    thread = threading.Thread(target=serving.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not serving.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serving.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """Opens headless Chromium windows, each with a profile of its own."""
    require_browser()
    from selenium import webdriver  # noqa: PLC0415  (only where a browser exists)
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    # Belt and braces: even if something asked Selenium Manager, it may not download.
    monkeypatch.setenv("SE_OFFLINE", "true")
    drivers: list[Any] = []

    def open_browser() -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        profile = tmp_path / f"profile-{len(drivers)}"
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(20)
        drivers.append(driver)
        return driver

    try:
        yield open_browser
    finally:
        for driver in drivers:
            driver.quit()


def log_in(driver: Any, base: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    wait_for_url(driver, f"{base}/")


def wait_for_url(driver: Any, url: str) -> None:
    from selenium.webdriver.support import expected_conditions  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    WebDriverWait(driver, 10).until(expected_conditions.url_to_be(url))


def wait_until_gone(driver: Any, element: Any) -> None:
    from selenium.webdriver.support import expected_conditions  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(element))


def device_rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return list(driver.find_elements(By.CSS_SELECTOR, "#devices tbody tr"))


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
    return path


def test_two_browsers_see_each_other_and_one_revokes_the_other(
    server: str, browser: Callable[[], Any]
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    first, second = browser(), browser()
    log_in(first, server, "alice", "alice-pw")
    log_in(second, server, "alice", "alice-pw")

    first.get(f"{server}/")
    second.get(f"{server}/")
    for driver in (first, second):
        rows = device_rows(driver)
        assert len(rows) == 2
        assert ["this device" in row.text for row in rows] == [True, False]
        assert driver.find_element(By.ID, "subject").text == "alice"
    screenshot(first, "1-first-browser-devices")
    screenshot(second, "2-second-browser-devices")

    [revoke] = first.find_elements(By.CSS_SELECTOR, "tr.device button")
    revoke.click()
    wait_until_gone(first, revoke)  # the POST, its 303 and the new page
    wait_for_url(first, f"{server}/")
    assert len(device_rows(first)) == 1
    screenshot(first, "3-first-browser-after-revoking")

    second.get(f"{server}/")
    wait_for_url(second, f"{server}/login")
    assert second.find_element(By.NAME, "username")
    screenshot(second, "4-second-browser-sent-to-login")
