"""``sonalyze up`` once everything is ready: a service that dies is started again, and so is
the embedded Postgres, until one dies too often (:class:`~sonalyze.stack.processes.RestartPolicy`).

The services need no restart when Postgres comes back: storage's connection pool checks each
connection before use and the others reach the database only through storage.
"""

from __future__ import annotations

import threading
import time

from sonalyze.stack.postgres import EmbeddedPostgres
from sonalyze.stack.processes import Console, RestartPolicy, ServiceProcess

POLL_S = 0.5
RESTART_TIMEOUT_S = 60.0  # for Postgres to come back


def supervise(
    services: list[ServiceProcess],
    postgres: EmbeddedPostgres | None,
    stop: threading.Event,
    console: Console,
) -> int:
    """Keep the services and Postgres running until ``stop`` is set (0), or until one of them
    died too often (1, after saying which)."""
    policies = {service.name: RestartPolicy() for service in services}
    database = RestartPolicy()
    due: dict[str, float] = {}  # service -> when to start it again
    recovering: set[str] = set()  # started again, not yet ready
    while not stop.wait(POLL_S):
        if postgres is not None and not postgres.running():
            wait = database.died()
            if wait is None:
                console.line(_gave_up("the embedded Postgres", "stopped", database))
                return 1
            console.line(f"the embedded Postgres stopped; starting it again in {wait:.1f} s")
            if stop.wait(wait):
                break
            failure = _restart(postgres, stop)
            if stop.is_set():
                break
            if failure:
                console.line(f"the embedded Postgres did not start: {failure}")
            else:
                console.line("the embedded Postgres is running again")
            continue
        now = time.monotonic()
        for service in services:
            name = service.name
            if name in due:
                if now >= due[name]:
                    del due[name]
                    service.restart()
                    recovering.add(name)
                continue
            code = service.exit_code()
            if code is None:
                if name in recovering and service.is_ready():
                    recovering.discard(name)
                    console.line(f"{name} is ready again")
                continue
            wait = policies[name].died()
            if wait is None:
                console.line(_gave_up(name, f"exited with code {code}", policies[name]))
                return 1
            recovering.discard(name)
            console.line(f"{name} exited with code {code}; starting it again in {wait:.1f} s")
            due[name] = now + wait
    console.line("stopping")
    return 0


def _restart(postgres: EmbeddedPostgres, stop: threading.Event) -> str | None:
    """Start Postgres again, in a thread so that a start that hangs (pgserver waits for the
    server to say it is ready) neither stops the supervision nor a Ctrl-C; why it failed, or
    None."""
    failure: list[str] = []

    def start() -> None:
        try:
            postgres.restart()
        except Exception as exc:  # pgserver raises what pg_ctl and psutil raise
            failure.append(str(exc))

    thread = threading.Thread(target=start, name="postgres-restart", daemon=True)
    thread.start()
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while thread.is_alive() and time.monotonic() < deadline and not stop.wait(POLL_S):
        pass
    if thread.is_alive():
        return f"not ready after {RESTART_TIMEOUT_S:.0f} s"
    return failure[0] if failure else None


def _gave_up(what: str, how: str, policy: RestartPolicy) -> str:
    return (
        f"error: {what} {how}, {policy.recent} times within {policy.window_s:.0f} s; "
        "giving up and stopping"
    )
