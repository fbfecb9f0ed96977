"""The gateway's one subscription to storage's event stream, routed to connections by lobby.

The hub starts at the log's head and follows the stream; when the stream breaks it reconnects
from the last event it saw, so no event is skipped. It says so once per outage (at start,
while storage is still starting, as information), not at every retry. Each event is encoded
once and offered to every feed of its lobby; a feed only appends to its connection's queue, so
fan-out never waits for a socket.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from sonalyze.storage_client import StorageClient
from sonalyze_gateway.feed import Feed, outgoing
from sonalyze_gateway.ws_metrics import WsMetrics

logger = logging.getLogger(__name__)


class EventHub:
    def __init__(self, storage: StorageClient, metrics: WsMetrics) -> None:
        self._storage = storage
        self._metrics = metrics
        self._feeds: dict[UUID, set[Feed]] = {}
        self._last_id: int | None = None
        self.connected = False
        self._outage_said = False  # an outage is logged once, not at every retry
        self._ever_connected = False

    def subscribe(self, feed: Feed) -> None:
        self._feeds.setdefault(feed.lobby_id, set()).add(feed)

    def unsubscribe(self, feed: Feed) -> None:
        feeds = self._feeds.get(feed.lobby_id)
        if feeds is not None:
            feeds.discard(feed)
            if not feeds:
                del self._feeds[feed.lobby_id]

    def ready(self) -> None:
        if not self.connected:
            raise RuntimeError("the event stream from storage is not connected")

    async def run(self) -> None:
        """Follow the stream until cancelled, reconnecting with backoff."""
        delay = 0.1
        while True:
            try:
                if self._last_id is None:
                    self._last_id = await self._storage.events_head()
                async for event in self._storage.stream_events(self._last_id, self._opened):
                    self._last_id = event.id
                    delay = 0.1
                    feeds = self._feeds.get(event.lobby_id)
                    if feeds:
                        message = outgoing(event)
                        for feed in list(feeds):
                            try:
                                feed.offer(event.seq, message)
                            except Exception:  # one connection's failure is not the others'
                                logger.exception("offering event %s failed", event.id)
            except Exception as exc:
                if not self._ever_connected and not self._outage_said:
                    logger.info("waiting for storage's event stream (%s)", exc)
                elif not self._outage_said:
                    logger.warning("event stream interrupted (%s); reconnecting", exc)
                self._outage_said = True
            self._set_connected(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _opened(self) -> None:
        self._ever_connected = True
        if self._outage_said:
            logger.info("event stream connected")
            self._outage_said = False
        self._set_connected(True)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._metrics.stream_connected.set(1 if connected else 0)
