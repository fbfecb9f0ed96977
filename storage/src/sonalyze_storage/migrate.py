"""Running the Alembic migrations: the only way the schema is made."""

from __future__ import annotations

import logging
import time
from importlib.resources import files

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from sonalyze_storage.settings import libpq_url, sqlalchemy_url

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


def unknown_revisions(database_url: str) -> list[str]:
    """The database's schema revisions that this code does not know: a newer release migrated
    it (and this one is a rollback, or an old pod restarting during a rollout)."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    engine = sa.create_engine(sqlalchemy_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    unknown = []
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            unknown.append(revision)
    return unknown


# What a starting or stopping server answers; any other answer of a server (a FATAL error: a
# wrong password, no such database) stays the same however long one waits.
_PASSING = (
    "the database system is starting up",
    "the database system is not yet accepting connections",
    "the database system is shutting down",
    "the database system is in recovery mode",
)


def _final(reason: str) -> bool:
    """Whether a failed connection's message is a server's answer that waiting will not change
    (libpq gives connection errors no SQLSTATE, so the message tells)."""
    return "FATAL:" in reason and not any(passing in reason for passing in _PASSING)


def wait_for_database(database_url: str, wait_s: float) -> None:
    """Return once the database accepts a connection, trying again for up to ``wait_s`` seconds
    while it cannot be reached or is still starting (as in a fresh Kubernetes release).

    Raises
    ------
    DatabaseUnreachable
        With the last connection error, once ``wait_s`` has passed, or at once when the server
        answers with an error that waiting will not mend (a wrong password, no such database).
    """
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            with psycopg.connect(libpq_url(database_url), connect_timeout=5):
                return
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            if _final(reason):
                final = f"the database refused the connection: {reason}"
                raise DatabaseUnreachable(final) from error
            if time.monotonic() + delay > deadline:
                raise DatabaseUnreachable(
                    f"the database did not answer within {wait_s:g} s: {reason}"
                ) from error
            log.info("waiting for the database (%s)", reason)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
