"""Real Chromium (Debian's ``chromium``, driven by Playwright through ``executable_path``)
against ``sonalyze up``: one stack for the browser tests, each phone its own browser process
(the fake microphone's file is per process), a phone-sized viewport, and a screenshot of every
screen.

The browser is obtained when missing and this machine can (root with apt-get, as CI has);
otherwise the tests skip and say why. ``playwright install`` is never used: its browser
downloads are blocked here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, libpq, new_database
from tests.stack.test_up import sonalyze_up, start

PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screens"


def _install_chromium() -> str | None:
    """Debian's chromium, installed with apt-get when this process may; its path or None."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ):
        if subprocess.run(command, env=env, capture_output=True, check=False).returncode != 0:
            return None
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or _install_chromium()
    if path is None:
        pytest.skip(
            "no chromium: install Debian's package (apt-get install chromium) or run as root "
            "with apt-get, which the suite then does itself"
        )
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's sync driver, for one module: it runs an event loop on this thread while
    it is open, and the other tests' ``asyncio.run`` must find none."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def app_url(postgres: str, template_db: str) -> Iterator[str]:
    """``sonalyze up`` on a fresh database; the app's address."""
    port = free_port()
    with (
        new_database(postgres, template_db) as database,
        sonalyze_up("--port", str(port), "--database-url", libpq(database)) as stack,
    ):
        start(stack, port)
        yield f"http://127.0.0.1:{port}"


class Phones:
    """Launches phones: each a browser process of its own, optionally with a microphone
    that plays ``capture`` (a WAV file) from the moment the page opens it."""

    def __init__(self, playwright: Any, chromium: str, name: str) -> None:
        self.playwright = playwright
        self.chromium = chromium
        self.name = name
        self.browsers: list[Any] = []

    def launch(
        self,
        capture: Path | None = None,
        viewport: dict[str, int] = PHONE,
        flags: tuple[str, ...] = (),
    ) -> Any:
        args = [
            *flags,
            "--no-sandbox",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
        ]
        if capture is not None:
            args.append(f"--use-file-for-fake-audio-capture={capture}%noloop")
        browser = self.playwright.chromium.launch(executable_path=self.chromium, args=args)
        self.browsers.append(browser)
        page = browser.new_context(viewport=viewport, device_scale_factor=2).new_page()
        page.errors = []
        page.console = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda message: page.console.append(f"{message.type}: {message.text}"))
        return page

    def close(self) -> None:
        for browser in self.browsers:
            browser.close()


@contextmanager
def phones(playwright: Any, chromium: str, name: str) -> Iterator[Phones]:
    launched = Phones(playwright, chromium, name)
    try:
        yield launched
    finally:
        launched.close()


def screenshot(page: Any, name: str) -> None:
    """Keep a screenshot of what the phone shows (``artifacts/screens/NAME.png``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
