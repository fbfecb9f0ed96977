"""The local stack for the benchmarks: ``sonalyze up`` in a temporary data directory, and a
minimal phone to talk to its gateway."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from sonalyze.protocol import SUBPROTOCOL

_ids = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sonalyze_up(**settings: str) -> Iterator[tuple[str, str]]:
    """``sonalyze up`` in a temporary data directory, the services' ``settings`` (by their
    environment variables) changed; yields (ws URL, gateway http URL)."""
    with tempfile.TemporaryDirectory(prefix="sonalyze-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "SONALYZE_LOG_LEVEL": "warning", **settings}
        process = subprocess.Popen(
            [sys.executable, "-m", "sonalyze.cli", "up", "--port", str(port),
             "--data-dir", f"{tmp}/pg"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if line.startswith("ready: "):
                    break
                if line.startswith("error"):
                    raise RuntimeError(line)
            gateway_http = next(
                line.split()[1] for line in process.stdout if line.startswith("gateway ")
            )
            threading_drain(process)
            yield f"ws://127.0.0.1:{port}/v1/ws", gateway_http
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)


def threading_drain(process: subprocess.Popen[str]) -> None:
    """Keep reading the stack's output so it never blocks on a full pipe."""

    def drain() -> None:
        assert process.stdout is not None
        for _ in process.stdout:
            pass

    threading.Thread(target=drain, daemon=True).start()


class Phone:
    """A minimal client: commands and their replies, events and upload replies as they come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self.arrived = asyncio.Event()
        self.token = ""
        self.device_id = ""
        self.pump = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for text in self.ws:
            message = json.loads(text)
            corr = message.get("corr")
            if corr in self.replies:
                self.replies.pop(corr).set_result(message)
            else:
                self.events.setdefault(message["type"], []).append((time.perf_counter(), message))
            self.arrived.set()

    async def call(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        command_id = f"m{next(_ids)}"
        future = asyncio.get_running_loop().create_future()
        self.replies[command_id] = future
        await self.ws.send(json.dumps({"v": 1, "type": kind, "id": command_id, "payload": payload}))
        reply = await asyncio.wait_for(future, 60)
        if reply["type"] == "error":
            raise RuntimeError(f"{kind}: {reply['payload']}")
        result: dict[str, Any] = reply["payload"]
        return result

    async def wait(self, kind: str, count: int = 1, within_s: float = 300) -> list[Any]:
        async with asyncio.timeout(within_s):
            while len(self.events.get(kind, [])) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.events[kind][:count]

    @classmethod
    async def connect(cls, url: str) -> Phone:
        ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None, max_size=2**22)
        phone = cls(ws)
        welcome = await phone.call("hello", {})
        phone.token, phone.device_id = welcome["token"], welcome["device_id"]
        return phone
