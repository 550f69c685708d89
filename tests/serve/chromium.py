"""Headless Chromium from the operating system's packages (chromium, chromium-driver), driven by selenium.

The flags keep Chromium off the network (this machine's closed network refuses its background
connections) and in a fresh profile. Used by the browser test and by tools/serve_screenshot.py.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables, or None where either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium session in a fresh profile (removed afterwards), window width x height CSS pixels."""
    found = find_chromium()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed: apt-get install chromium chromium-driver")
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="qaconv-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        session = webdriver.Chrome(service=Service(driver), options=options)
        try:
            yield session
        finally:
            session.quit()
