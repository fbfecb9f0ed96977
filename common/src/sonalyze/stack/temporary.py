"""A whole local stack for as long as a caller needs it: ``sonalyze up`` in a temporary data
directory on a free port, stopped (as Ctrl-C stops it) and removed afterwards. ``sonalyze demo
--start`` and the benchmarks run on it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import IO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def temporary_stack(
    env: Mapping[str, str] | None = None, say: Callable[[str], None] = lambda _: None
) -> Iterator[int]:
    """Start ``sonalyze up`` (with ``env`` added to its environment, its services' settings
    say), wait until it is ready and yield its gateway's port; ``say`` hears where it starts.
    :class:`RuntimeError` (with the last lines it wrote) if it does not get ready."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sonalyze-") as tmp:
        say(f"starting the system (sonalyze up --port {port}) in {tmp}")
        process = subprocess.Popen(
            [sys.executable, "-m", "sonalyze.cli", "up", "--port", str(port), "--data-dir",
             f"{tmp}/pg"],
            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        said: deque[str] = deque(maxlen=20)  # what it said last, for the error if it fails
        try:
            for line in process.stdout:
                if line.startswith("ready: "):
                    break
                if line.startswith("error"):
                    raise RuntimeError(f"sonalyze up: {line.strip()}{_earlier(said)}")
                said.append(line.rstrip())
            else:
                raise RuntimeError(
                    f"sonalyze up stopped (exit {process.wait()}) before it was ready"
                    + _earlier(said)
                )
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
            yield port
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _earlier(lines: deque[str]) -> str:
    return "".join(f"\n  {line}" for line in lines)


def _drain(output: IO[str]) -> None:
    """Keep reading the stack's output, so that it never waits on a full pipe."""
    for _ in output:
        pass
