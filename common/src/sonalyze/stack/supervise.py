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
            try:
                postgres.restart()
            except Exception as exc:  # pgserver raises what pg_ctl and psutil raise
                console.line(f"the embedded Postgres did not start: {exc}")
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


def _gave_up(what: str, how: str, policy: RestartPolicy) -> str:
    return (
        f"error: {what} {how}, {policy.recent} times within {policy.window_s:.0f} s; "
        "giving up and stopping"
    )
