"""Outcomes of recent commands by device and command id, so that a repeated id (a client that
retries after losing the connection) is answered again and never executed twice.

The first arrival of an id starts the command as a task of its own, which finishes even if the
connection that sent it closes meanwhile; a repeat waits for that same outcome. Outcomes are
kept for ``ttl_s`` (at most ``max_entries``), except refusals that a retry may not meet again
(storage unavailable, rate limited), which are forgotten once answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from uuid import UUID

from sonalyze_gateway.commands import Outcome


class RecentReplies:
    def __init__(self, ttl_s: float = 600.0, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # A running command's task; once done, just its outcome (plain tuples, untracked by
        # the garbage collector, however many are kept).
        self._entries: OrderedDict[
            tuple[UUID, str], tuple[float, asyncio.Task[Outcome] | Outcome]
        ] = OrderedDict()

    async def once(
        self, device_id: UUID, command_id: str, run: Callable[[], Awaitable[Outcome]]
    ) -> tuple[Outcome, bool]:
        """The outcome of ``command_id``: run now, or remembered; and whether it ran now."""
        key = (device_id, command_id)
        now = time.monotonic()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            known = entry[1]
            return (known if isinstance(known, Outcome) else await asyncio.shield(known)), False
        task = asyncio.ensure_future(run())
        self._entries[key] = (now, task)
        task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task), True

    def _settled(self, key: tuple[UUID, str], task: asyncio.Task[Outcome]) -> None:
        entry = self._entries.get(key)
        if entry is None or entry[1] is not task:
            return
        if task.cancelled() or task.exception() is not None or not task.result().remember:
            del self._entries[key]
        else:
            self._entries[key] = (entry[0], task.result())

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (at, _) = next(iter(self._entries.items()))
            if now - at < self._ttl_s and len(self._entries) < self._max_entries:
                return
            del self._entries[key]  # a task still running finishes; it is just not kept

    def close(self) -> None:
        """Cancel the commands still running (the process is stopping)."""
        for _, known in self._entries.values():
            if isinstance(known, asyncio.Task):
                known.cancel()
