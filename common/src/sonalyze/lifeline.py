"""Processes that do not outlive the one that started them.

A supervisor killed outright (SIGKILL, a closed terminal, a test's hard stop) runs no clean-up:
whatever it started runs on, holding ports, a database's data directory and CPU. So each child
the system starts is told its parent's PID (``SONALYZE_PARENT_PID`` for a service or a worker
process, an argument for a pool's worker) and watches it: once the parent is gone, the child
stops itself as it would on SIGTERM (a service drains), and is killed outright if that has not
ended it within :data:`GRACE_S`.

The watch polls the parent PID (:func:`os.getppid`), which changes when the parent dies: it
works on every POSIX system, and, unlike Linux's parent-death signal, it does not take the
death of the thread that started the child for the parent's.
"""

from __future__ import annotations

import os
import signal
import threading
import time

PARENT_PID = "SONALYZE_PARENT_PID"
POLL_S = 0.5
GRACE_S = 20.0


def child_environment() -> dict[str, str]:
    """What a child this process starts is told, so that it watches this process."""
    return {PARENT_PID: str(os.getpid())}


def parent_gone(parent_pid: int) -> bool:
    """Whether this process's parent is no longer ``parent_pid`` (it died; this process was
    handed to init or a subreaper)."""
    return os.getppid() != parent_pid


def watch_parent(parent_pid: int, *, poll_s: float = POLL_S, grace_s: float = GRACE_S) -> None:
    """Stop this process once ``parent_pid`` is no longer its parent: SIGTERM to itself, and
    after ``grace_s`` more seconds SIGKILL. Returns at once; a daemon thread watches."""

    def watch() -> None:
        while not parent_gone(parent_pid):
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
