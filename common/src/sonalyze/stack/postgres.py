"""An embedded Postgres from the pgserver wheel (real Postgres binaries, no Docker, no apt).

``python -m sonalyze.stack.postgres DATA_DIR`` is its guard: started by ``sonalyze up`` and
watching it (:mod:`sonalyze.lifeline`), it stops the server (a fast shutdown) once ``sonalyze
up`` is gone without having stopped it, killed outright. Postgres runs detached from whoever
started it (``pg_ctl`` hands it to init), so only such a guard can tie it to the supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from sonalyze.lifeline import PARENT_PID, POLL_S, child_environment, parent_gone

DATABASE = "sonalyze"


def default_data_dir() -> Path:
    """Where the embedded database lives unless ``--data-dir`` says otherwise."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sonalyze")) / "postgres"


def _forget_dead_handles(data_dir: Path) -> None:
    """pgserver stops the server when its last user process lets go, and keeps those users'
    PIDs in a file; a user killed without a chance to let go (SIGKILL) stays there forever
    and the server would never be stopped again. Drop the PIDs that no longer run."""
    handles = data_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def postmaster_pid(data_dir: Path) -> int | None:
    """The server's PID from its ``postmaster.pid``, if it is running."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _running(pid) else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """Starts (or reuses) a Postgres server on a Unix socket in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None
        self._guard: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the server, make sure the ``sonalyze`` database exists, return its URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp.
            warnings.simplefilter("ignore")
            import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(self.data_dir)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        found = self._server.psql(f"SELECT 'found' FROM pg_database WHERE datname = '{DATABASE}';")
        if "found" not in found:
            self._server.psql(f"CREATE DATABASE {DATABASE};")
        uri: str = self._server.get_uri(DATABASE)
        if self._guard is None:
            self._guard = subprocess.Popen(
                [sys.executable, "-m", "sonalyze.stack.postgres", str(self.data_dir)],
                env={**os.environ, **child_environment()},
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C is the supervisor's to handle
            )
        return uri

    def running(self) -> bool:
        """Whether the server is up (a killed one is not, until :meth:`restart`)."""
        return postmaster_pid(self.data_dir) is not None

    def restart(self) -> None:
        """Start the server again after it died, in the same place (its URL is unchanged);
        raises if it does not start (the old server's processes may still be ending)."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        """Stop the server (a clean, fast shutdown) and its guard; safe to call twice."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._guard is not None:
            self._guard.terminate()
            self._guard.wait()
            self._guard = None


def guard(data_dir: Path, parent_pid: int) -> None:
    """Wait until ``parent_pid`` is gone, then stop the server in ``data_dir`` (SIGINT: a fast
    shutdown, which rolls back open transactions and loses nothing committed)."""
    while not parent_gone(parent_pid):
        time.sleep(POLL_S)
    pid = postmaster_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGINT)


if __name__ == "__main__":
    guard(Path(sys.argv[1]), int(os.environ[PARENT_PID]))
