"""Rate limits of the gateway: a token bucket per connection for commands, and a sliding
window of failed join attempts per device and per client address (against code guessing). An
attempt counts as failed from the moment it begins until it succeeds, so that guesses sent
at once, from many connections, count as they go and not only once answered."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each command takes one."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> float | None:
        """Take a token: ``None`` if one was there, else the seconds until one will be."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self._rate


class FailureWindow:
    """At most ``limit`` failures per key within ``window_s``; remembers ``max_keys`` keys
    (the least recently failing are forgotten first, so memory stays bounded)."""

    def __init__(
        self, limit: int, window_s: float, max_keys: int = 100_000, clock: Clock = time.monotonic
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked(self, key: str) -> float | None:
        """``None`` if ``key`` may try, else the seconds until it may."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self._clock() - self._window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        if len(failures) < self._limit:
            return None
        return failures[0] - horizon

    def wait(self, keys: Sequence[str]) -> float | None:
        """``None`` if every one of ``keys`` may try, else the seconds until all may."""
        waits = [w for key in keys if (w := self.blocked(key)) is not None]
        return max(waits) if waits else None

    def begin(self, keys: Sequence[str]) -> float:
        """Count an attempt under each of ``keys`` as a failure from now on; returns its time,
        for :meth:`succeeded`."""
        at = self._clock()
        for key in keys:
            failures = self._failures.setdefault(key, deque())
            self._failures.move_to_end(key)
            failures.append(at)
            while len(failures) > self._limit:
                failures.popleft()
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
        return at

    def succeeded(self, keys: Sequence[str], at: float) -> None:
        """The attempt begun at ``at`` did not fail: it no longer counts."""
        for key in keys:
            failures = self._failures.get(key)
            if failures is not None and at in failures:
                failures.remove(at)
