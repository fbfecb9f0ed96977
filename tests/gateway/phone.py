"""A test phone: a real WebSocket client of protocol v1 that checks every message it receives
against the AsyncAPI document (so the tests show the gateway sends only documented messages)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sonalyze.protocol import SUBPROTOCOL

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
_ids = itertools.count(1)


@cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOC.read_text())
    return document


def check_documented(message: dict[str, Any]) -> None:
    """Raise unless ``message`` validates against its message schema in the AsyncAPI file."""
    document = _document()
    spec = document["components"]["messages"].get(message.get("type"))
    assert spec is not None, f"undocumented message type {message.get('type')!r}"
    schema = {"components": document["components"], "$ref": spec["payload"]["$ref"]}
    jsonschema.validate(message, schema, cls=jsonschema.Draft202012Validator)


class Phone:
    """One connection. ``events`` collects server events; replies are matched by ``corr``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.uncorrelated: list[dict[str, Any]] = []
        self.device_id: str | None = None
        self.token: str | None = None
        self.arrival: dict[int, float] = {}  # seq -> time.time() of arrival
        self.reading = asyncio.Event()  # clear it to stop reading, as a stalled phone would
        self.reading.set()
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, url: str, *, hello: bool = True, token: str | None = None, **options: Any
    ) -> Phone:
        options.setdefault("subprotocols", [SUBPROTOCOL])
        phone = cls(await connect(url, compression=None, **options))
        if hello:
            welcome = await phone.command("hello", {"token": token} if token else {})
            assert welcome["type"] == "welcome", welcome
            phone.device_id = welcome["payload"]["device_id"]
            phone.token = welcome["payload"]["token"]
        return phone

    async def _read(self) -> None:
        try:
            while True:
                await self.reading.wait()
                text = await self.ws.recv()
                message = json.loads(text)
                check_documented(message)
                if "seq" in message:
                    self.arrival.setdefault(message["seq"], time.time())
                corr = message.get("corr")
                if message["type"] in ("ack", "error", "welcome"):
                    future = self._replies.pop(corr, None) if corr else None
                    if future is not None and not future.done():
                        future.set_result(message)
                    else:
                        self.uncorrelated.append(message)
                else:
                    self.events.append(message)
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed before the reply"))
            self._arrived.set()

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def command(
        self, kind: str, payload: dict[str, Any] | None = None, *, id: str | None = None
    ) -> dict[str, Any]:
        """Send a command and wait for its reply."""
        command_id = id or f"c{next(_ids)}"
        future = asyncio.get_running_loop().create_future()
        self._replies[command_id] = future
        body = {"v": 1, "type": kind, "id": command_id, "payload": payload or {}}
        await self.ws.send(json.dumps(body))
        return await asyncio.wait_for(future, 10)

    async def ok(self, kind: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command that must succeed; its ack payload."""
        reply = await self.command(kind, payload)
        assert reply["type"] == "ack", reply
        result: dict[str, Any] = reply["payload"]
        return result

    async def wait_for_seq(self, seq: int, within_s: float = 10) -> None:
        """Wait until an event with ``seq`` (or later) arrived."""
        async with asyncio.timeout(within_s):
            while not any(
                e.get("seq", 0) >= seq and e["type"] != "lobby.state" for e in self.events
            ):
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_event(self, kind: str, within_s: float = 10) -> dict[str, Any]:
        """The first event of type ``kind``, once it arrived."""
        async with asyncio.timeout(within_s):
            while not any(e["type"] == kind for e in self.events):
                self._arrived.clear()
                await self._arrived.wait()
        return next(e for e in self.events if e["type"] == kind)

    async def wait_until(self, condition: Callable[[], bool], within_s: float = 10) -> None:
        """Wait until ``condition()`` holds, checking as messages arrive."""
        async with asyncio.timeout(within_s):
            while not condition():
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_uncorrelated(self, within_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(within_s):
            while not self.uncorrelated:
                self._arrived.clear()
                await self._arrived.wait()
        return self.uncorrelated.pop(0)

    async def closed(self, within_s: float = 10) -> tuple[int | None, str | None]:
        """Wait for the gateway to close; its close code and reason."""
        async with asyncio.timeout(within_s):
            await self.ws.wait_closed()
        await self.reader
        return self.ws.close_code, self.ws.close_reason

    def log(self) -> list[tuple[int, str]]:
        """The lobby events received, as (seq, type), without snapshots."""
        return [(e["seq"], e["type"]) for e in self.events if e["type"] != "lobby.state"]

    async def close(self) -> None:
        await self.ws.close()
        await self.reader
