"""The real stack for gateway tests: storage and lobby on real HTTP over a fresh database,
and the gateway on real WebSockets, in this process (or as separate processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from sonalyze_gateway.app import create_app, uvicorn_options
from sonalyze_gateway.settings import GatewaySettings
from sonalyze_lobby.app import create_app as create_lobby_app
from sonalyze_lobby.settings import LobbySettings
from tests.conftest import TOKEN, free_port, serving

SECRET = "test-device-token-secret-0123456789"
ORIGIN = "https://app.sonalyze.test"


@pytest.fixture
def lobby_url(storage_url: str) -> Iterator[str]:
    settings = LobbySettings(storage_url=storage_url, internal_token=TOKEN)
    with serving(create_lobby_app(settings)) as url:
        yield url


@pytest.fixture
def gateway_settings(storage_url: str, lobby_url: str) -> GatewaySettings:
    return GatewaySettings(
        storage_url=storage_url,
        lobby_url=lobby_url,
        internal_token=TOKEN,
        device_token_secrets=[SECRET],
        allowed_origins=[ORIGIN],
    )


@contextmanager
def gateway_serving(settings: GatewaySettings) -> Iterator[str]:
    """The gateway in this process; yields its WebSocket URL once its event stream is up."""
    with serving(create_app(settings), **uvicorn_options(settings)) as url:
        wait_ready(url)
        yield url.replace("http://", "ws://") + "/v1/ws"


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "gateway not ready"
        time.sleep(0.05)


@pytest.fixture
def gateway(gateway_settings: GatewaySettings) -> Iterator[str]:
    with gateway_serving(gateway_settings) as url:
        yield url


@contextmanager
def gateway_process(settings: GatewaySettings, port: int | None = None) -> Iterator[GatewayProcess]:
    """The gateway as its own process (``python -m sonalyze_gateway``)."""
    process = GatewayProcess(settings, port or free_port())
    try:
        yield process
    finally:
        process.stop()


class GatewayProcess:
    def __init__(self, settings: GatewaySettings, port: int) -> None:
        self.port = port
        self.http = f"http://127.0.0.1:{port}"
        self.url = f"ws://127.0.0.1:{port}/v1/ws"
        env = {
            **os.environ,
            "SONALYZE_PORT": str(port),
            "SONALYZE_STORAGE_URL": settings.storage_url,
            "SONALYZE_LOBBY_URL": settings.lobby_url,
            "SONALYZE_INTERNAL_TOKEN": TOKEN,
            "SONALYZE_DEVICE_TOKEN_SECRETS": f'["{SECRET}"]',
            "SONALYZE_ALLOWED_ORIGINS": f'["{ORIGIN}"]',
            "SONALYZE_DRAIN_DELAY_S": str(settings.drain_delay_s),
            "SONALYZE_LOG_LEVEL": "warning",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "sonalyze_gateway"], env=env)
        wait_ready(self.http)

    def terminate(self) -> None:
        self.process.terminate()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
