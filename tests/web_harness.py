"""What the browser and HTTP tests share: an ASGI app served for real in a thread, Debian's headless Chromium,
and one way to wait for a page or a run to reach a state.

Real servers and a real browser because what is tested is what a clerk's browser gets (the bytes on the wire,
the rendered page, the dark scheme), which a TestClient does not show.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hms.chaos import free_port
from tests.conftest import ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"


@contextlib.contextmanager
def served_in_thread(app: Any, what: str = "the web app") -> Iterator[str]:
    """``app`` behind a real uvicorn on a free 127.0.0.1 port, for as long as the block runs; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), f"{what} did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def headless_chromium(window: str = "1400,1000") -> Iterator[Any]:
    """A Selenium driver of Debian's chromium; the test skips, saying what to install, where it is missing."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian chromium + chromedriver are not installed (scripts/system-deps.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={window}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def until(
    what: str,
    check: Callable[[], Any],
    timeout: float = 10,
    every: float = 0.1,
    not_yet: tuple[type[Exception], ...] = (Exception,),
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and the last value) otherwise.

    An exception of ``not_yet`` from ``check`` (a page mid-reload, a stale element) counts as "not yet"; others
    end the wait at once (``not_yet=()``: a check that asserts a run has not failed fails the test then).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except not_yet as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def background(driver: Any) -> tuple[int, ...]:
    """The page's background as sRGB bytes (the stylesheet's oklch, resolved by the browser on a canvas)."""
    return tuple(
        driver.execute_script("""
        const c = document.createElement('canvas').getContext('2d');
        c.fillStyle = getComputedStyle(document.body).backgroundColor; c.fillRect(0, 0, 1, 1);
        return Array.from(c.getImageData(0, 0, 1, 1).data.slice(0, 3));""")
    )


def dark(rgb: tuple[int, ...]) -> bool:
    return sum(rgb) / 3 < 60
