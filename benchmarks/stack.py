"""The local stack for the benchmarks: ``sonalyze up`` in a temporary data directory
(:mod:`sonalyze.stack.temporary`); their phones are :class:`sonalyze.client.Client`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sonalyze.stack.temporary import free_port, temporary_stack

__all__ = ["free_port", "sonalyze_up"]


@contextlib.contextmanager
def sonalyze_up(**settings: str) -> Iterator[tuple[str, str]]:
    """``sonalyze up``, the services' ``settings`` (by their environment variables) changed
    and their logs quiet; yields (ws URL, gateway http URL)."""
    with temporary_stack({"SONALYZE_LOG_LEVEL": "warning", **settings}) as port:
        yield f"ws://127.0.0.1:{port}/v1/ws", f"http://127.0.0.1:{port}"
