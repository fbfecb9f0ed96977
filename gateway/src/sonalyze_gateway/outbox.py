"""One connection's bounded send queue and the writer task that empties it.

Fan-out only ever appends to a queue (never awaits a socket), so a phone that stops reading
fills its own queue and nobody else's. Past half full, live events wait in the connection's
feed and are queued as room appears (:meth:`Outbox.put_paced`); a connection that makes no
room for ``slow_consumer_s``, or whose queue fills up, is a slow consumer: it takes nothing
more, and the writer sends the close frame after what is queued.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import NamedTuple

from starlette.websockets import WebSocket

from sonalyze.protocol import CloseCode
from sonalyze_gateway.ws_metrics import WsMetrics, type_label


class Outgoing(NamedTuple):
    """A frame to send."""

    text: str
    kind: str
    committed_at: float | None = None  # an event's commit time (epoch s), for fan-out latency


class Outbox:
    """Messages waiting for one connection's socket."""

    def __init__(
        self, websocket: WebSocket, size: int, slow_consumer_s: float, metrics: WsMetrics
    ) -> None:
        self._ws = websocket
        self._size = size
        self._slow_consumer_s = slow_consumer_s
        self._metrics = metrics
        self._queue: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.close_code: int | None = None
        self.close_reason = ""
        # A plain future, not an event waited on by a task: one object per connection.
        self.closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def has_room(self) -> bool:
        """Less than half full: live events may be queued directly."""
        return self._room.is_set()

    def put(self, message: Outgoing) -> bool:
        """Queue ``message``; when the queue is full, close as a slow consumer instead."""
        if self.close_code is not None:
            return False
        if len(self._queue) >= self._size:
            self._slow()
            return False
        self._queue.append(message)
        if len(self._queue) >= self._size // 2:
            self._room.clear()
        self._ready.set()
        return True

    async def put_paced(self, message: Outgoing) -> bool:
        """Queue ``message`` once the queue is less than half full; close as a slow consumer
        if that takes longer than ``slow_consumer_s``."""
        try:
            async with asyncio.timeout(self._slow_consumer_s):
                await self._room.wait()
        except TimeoutError:
            self._slow()
            return False
        return self.put(message)

    def _slow(self) -> None:
        if self.close_code is None:
            self._metrics.slow_consumers.inc()
            self.close(CloseCode.slow_consumer, "you stopped reading; reconnect and resume")

    def close(self, code: int, reason: str) -> None:
        """Send the close frame after what is queued; queue nothing more. The first wins."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        if not self.closing.done():
            self.closing.set_result(None)
        self._room.set()
        self._ready.set()

    async def run(self) -> None:
        """Send queued messages until closed; then send the close frame."""
        while True:
            await self._ready.wait()
            while self._queue:
                message = self._queue.popleft()
                if len(self._queue) < self._size // 2:
                    self._room.set()
                await self._ws.send_text(message.text)
                self._metrics.sent.labels(type_label(message.kind)).inc()
                if message.committed_at is not None:
                    self._metrics.fanout.observe(max(0.0, time.time() - message.committed_at))
            self._ready.clear()
            if self.close_code is not None:
                await self._ws.close(self.close_code, self.close_reason)
                return
