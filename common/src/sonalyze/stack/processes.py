"""Service processes: started with their settings in the environment, logs prefixed, and
started again when they die, within limits (:class:`RestartPolicy`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

import httpx

from sonalyze.lifeline import child_environment


class Console:
    """Writes whole lines from several threads without interleaving them."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """Write one line; if the reader went away (``| head``), drop the line, so that the
        services writing into us never block."""
        with self._lock:
            try:
                self._out.write(text + "\n")
                self._out.flush()
            except (BrokenPipeError, ValueError):
                pass


class ServiceProcess:
    """One service as ``python -m <module>``, in its own session so that a terminal's Ctrl-C
    reaches the supervisor only, which then stops the services in order; it watches the
    supervisor and stops if that is gone (:mod:`sonalyze.lifeline`). ``tls``: it serves
    HTTPS, and is asked whether it is ready over https."""

    def __init__(
        self,
        name: str,
        module: str,
        port: int,
        env: Mapping[str, str],
        console: Console,
        args: tuple[str, ...] = (),
        tls: bool = False,
    ) -> None:
        self.name = name
        self.port = port
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self._console = console
        self._command = [sys.executable, "-m", module, *args]
        self._env = {**os.environ, **env, **child_environment()}
        self._start()

    def _start(self) -> None:
        self._process = subprocess.Popen(
            self._command,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._forward_logs, daemon=True)
        self._pump.start()

    def restart(self) -> None:
        """Start the service again, as it was first started, after it exited."""
        assert self._process.poll() is not None, "restart a service that has exited"
        self._pump.join(2)
        self._start()

    def _forward_logs(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            self._console.line(f"{self.name:<11} | {raw.rstrip()}")

    def exit_code(self) -> int | None:
        return self._process.poll()

    def wait(self, timeout: float) -> int:
        code = self._process.wait(timeout)
        self._pump.join(2)
        return code

    def is_ready(self) -> bool:
        # Over TLS the certificate is not verified: this asks a process we started, on
        # loopback, whether it is ready, and sends nothing secret. The certificate in use need
        # not name 127.0.0.1 (a user's own names the LAN host only), and the user's is checked
        # against its key before anything starts, so verifying here would test nothing more.
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2, verify=not self.tls)
            return response.status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL if the service has not exited after ``timeout`` seconds;
        the exit code, or None if even SIGKILL did not end it in time."""
        self.terminate()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def wait_ready(
    services: list[ServiceProcess], timeout: float, stop: threading.Event
) -> list[ServiceProcess]:
    """Poll until every service is ready, one has exited, ``stop`` is set or ``timeout``
    passes; returns the services not ready (empty on success)."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending and time.monotonic() < deadline and not stop.is_set():
        if any(s.exit_code() is not None for s in services):
            break
        pending = [s for s in pending if not s.is_ready()]
        if pending:
            stop.wait(0.2)
    return pending


class RestartPolicy:
    """When to start a service again after it died: after a wait that doubles with each death
    (from ``first_wait_s`` up to ``max_wait_s``), unless it died ``limit`` times within
    ``window_s``: then it is given up (a service that cannot start would otherwise loop)."""

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 60.0,
        first_wait_s: float = 0.5,
        max_wait_s: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._first_wait_s = first_wait_s
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._deaths: list[float] = []

    def died(self) -> float | None:
        """Count a death; the seconds to wait before starting it again, or None: give up."""
        now = self._clock()
        self._deaths = [t for t in self._deaths if t > now - self.window_s] + [now]
        if len(self._deaths) >= self.limit:
            return None
        return float(min(self._max_wait_s, self._first_wait_s * 2 ** (len(self._deaths) - 1)))

    @property
    def recent(self) -> int:
        """Deaths within the window, the last counted included."""
        return len(self._deaths)
