"""A real headless Chromium for the operator-page tests, driven through Debian's chromedriver by Selenium.

`scripts/setup.sh` installs `chromium` and `chromium-driver` where they are absent, so a missing browser
is a failure here, not a skip. Name resolution is switched off in the browser: the page must work on a line
PC with no network, and anything it tried to fetch from outside would fail to load.
"""

from __future__ import annotations

import shutil

import pytest


def open_chromium(width: int = 1280, height: int = 860):
    """A headless Chromium (Selenium WebDriver) that can reach only 127.0.0.1."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver; "
                    "scripts/setup.sh does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-proxy-server", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    # Service with an explicit path: Selenium never looks for (or downloads) a driver of its own
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll `condition()` until it returns something truthy (returned), or fail naming `what`."""
    import time

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what} (last: {last!r})")
