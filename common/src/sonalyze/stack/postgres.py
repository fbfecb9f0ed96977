"""An embedded Postgres from the pgserver wheel (real Postgres binaries, no Docker, no apt)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

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
        return uri

    def stop(self) -> None:
        """Stop the server (a clean, fast shutdown); safe to call twice."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
