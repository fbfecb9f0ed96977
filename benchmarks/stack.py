"""The local stack for the benchmarks: ``sonalyze up`` in a temporary data directory (their
phones are :class:`sonalyze.client.Client`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator


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
