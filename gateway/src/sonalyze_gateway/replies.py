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

from sonalyze_gateway.commands import Follow, Outcome
from sonalyze_gateway.outbox import Outgoing

# A settled outcome, with the time it was started first: one exact tuple of str, int, float,
# bool and None. The garbage collector stops tracking such tuples (not NamedTuples, not UUIDs,
# not tuples holding those), so outcomes remembered for minutes never make its full collections
# longer or more frequent.
Settled = tuple[float, str, str, float | None, int | None, int | None, str | None, bool]
Running = tuple[float, "asyncio.Task[Outcome]"]


def settle(at: float, outcome: Outcome) -> Settled:
    reply, follow, remember = outcome
    if follow is None:
        return (at, *reply, None, None, None, remember)
    return (at, *reply, follow.lobby_id.int, follow.after_seq, follow.snapshot, remember)


def unsettle(settled: Settled) -> Outcome:
    _, text, kind, committed_at, lobby, after_seq, snapshot, remember = settled
    follow = None if lobby is None else Follow(UUID(int=lobby), after_seq, snapshot)
    return Outcome(Outgoing(text, kind, committed_at), follow, remember)


class RecentReplies:
    def __init__(self, ttl_s: float = 600.0, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # By (device id as int, command id), oldest first.
        self._entries: OrderedDict[tuple[int, str], Running | Settled] = OrderedDict()

    async def once(
        self, device_id: UUID, command_id: str, run: Callable[[], Awaitable[Outcome]]
    ) -> tuple[Outcome, bool]:
        """The outcome of ``command_id``: run now, or remembered; and whether it ran now."""
        key = (device_id.int, command_id)
        now = time.monotonic()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            if len(entry) == 2:
                return await asyncio.shield(entry[1]), False
            return unsettle(entry), False
        task = asyncio.ensure_future(run())
        self._entries[key] = (now, task)
        task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task), True

    def _settled(self, key: tuple[int, str], task: asyncio.Task[Outcome]) -> None:
        entry = self._entries.get(key)
        if entry is None or len(entry) != 2 or entry[1] is not task:
            return
        if task.cancelled() or task.exception() is not None or not task.result().remember:
            del self._entries[key]
        else:
            self._entries[key] = settle(entry[0], task.result())

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry[0] < self._ttl_s and len(self._entries) < self._max_entries:
                return
            del self._entries[key]  # a task still running finishes; it is just not kept

    def close(self) -> None:
        """Cancel the commands still running (the process is stopping)."""
        for entry in self._entries.values():
            if len(entry) == 2:
                entry[1].cancel()
