"""Running the Alembic migrations: the only way the schema is made."""

from __future__ import annotations

import logging
import time
from importlib.resources import files

import psycopg
from alembic import command
from alembic.config import Config

from sonalyze_storage.settings import libpq_url

log = logging.getLogger(__name__)


class DatabaseUnreachable(RuntimeError):
    """The database did not accept a connection within the time given."""


def alembic_config(database_url: str) -> Config:
    """An Alembic config for this package's migrations against ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(files("sonalyze_storage") / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (a no-op when it is there already)."""
    command.upgrade(alembic_config(database_url), revision)


def wait_for_database(database_url: str, wait_s: float) -> None:
    """Return once the database accepts a connection, trying again for up to ``wait_s`` seconds
    (a database that is still starting, as in a fresh Kubernetes release).

    Raises
    ------
    DatabaseUnreachable
        With the last connection error, once ``wait_s`` has passed.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            with psycopg.connect(libpq_url(database_url), connect_timeout=5):
                return
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            if time.monotonic() + delay > deadline:
                raise DatabaseUnreachable(
                    f"the database did not answer within {wait_s:g} s: {reason}"
                ) from error
            log.info("waiting for the database (%s)", reason)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
