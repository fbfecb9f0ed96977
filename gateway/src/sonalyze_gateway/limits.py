"""Rate limits of the gateway: a token bucket per connection for commands, and a sliding
window of failed join attempts per device and per client address (against code guessing)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

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

    def fail(self, key: str) -> None:
        failures = self._failures.setdefault(key, deque())
        self._failures.move_to_end(key)
        failures.append(self._clock())
        while len(failures) > self._limit:
            failures.popleft()
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
