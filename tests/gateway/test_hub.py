"""The gateway's subscription to storage's event stream, started before storage is up: it
says it waits, once, and keeps retrying without a warning at every attempt."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from sonalyze.metrics import new_registry
from sonalyze.storage_client import StorageClient
from sonalyze_gateway.hub import EventHub
from sonalyze_gateway.ws_metrics import WsMetrics
from tests.conftest import TOKEN, free_port


def test_a_hub_waiting_for_storage_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with StorageClient(f"http://127.0.0.1:{free_port()}", TOKEN, 1.0) as storage:
            hub = EventHub(storage, WsMetrics(new_registry()))
            task = asyncio.create_task(hub.run())
            await asyncio.sleep(2)  # retries at 0.1, 0.2, 0.4, 0.8 s: several attempts
            assert not hub.connected
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.DEBUG, logger="sonalyze_gateway.hub"):
        asyncio.run(scenario())
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith(".hub")]
    assert len(said) == 1 and said[0][0] == "INFO", said
    assert said[0][1].startswith("waiting for storage's event stream")
