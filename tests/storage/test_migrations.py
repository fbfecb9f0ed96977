"""Migrations are the only way the schema is made, and they agree with the models."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import sonalyze_storage.tables  # noqa: F401
from sonalyze_storage.migrate import upgrade
from tests.conftest import libpq

TABLES = {
    "devices", "lobbies", "participants", "events", "blobs", "blob_chunks", "measurements",
    "recordings", "analyses", "simulation_jobs", "alembic_version",
}  # fmt: skip


def schema(url: str) -> list[tuple]:
    """Every column, constraint and index of the public schema."""
    with psycopg.connect(libpq(url)) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace ORDER BY 1"
        ).fetchall()
    return columns + indexes + constraints


def test_upgrade_from_empty_creates_the_domain(empty_database: str) -> None:
    upgrade(empty_database)
    with psycopg.connect(libpq(empty_database)) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    assert tables == TABLES


def test_upgrade_twice_is_a_no_op(empty_database: str) -> None:
    upgrade(empty_database)
    first = schema(empty_database)
    upgrade(empty_database)
    assert schema(empty_database) == first


def test_models_and_migrations_agree(empty_database: str) -> None:
    upgrade(empty_database)
    engine = sa.create_engine(empty_database)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_alembic_cli_upgrade_head_from_the_storage_folder(empty_database: str, repo_root) -> None:
    env = {**os.environ, "SONALYZE_DATABASE_URL": libpq(empty_database)}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=repo_root / "storage",
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    with psycopg.connect(libpq(empty_database)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0004",)


def migrate(url: str, *args: str) -> subprocess.Popen[str]:
    """``python -m sonalyze_storage migrate`` (what the chart runs) against ``url``."""
    env = {**os.environ, "SONALYZE_DATABASE_URL": url}
    command = [sys.executable, "-m", "sonalyze_storage", "migrate", *args]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def test_migrate_waits_for_a_database_that_is_still_starting(
    empty_database: str, tmp_path: Path
) -> None:
    # The database's URL names a socket directory where Postgres appears only a moment later.
    url = libpq(empty_database)
    real = Path(parse_qs(urlsplit(url).query)["host"][0])
    later = tmp_path / "socket"
    later.mkdir()
    running = migrate(url.replace(str(real), str(later)), "--wait-s", "60")
    assert running.stderr is not None
    seen = ""
    while "waiting for the database" not in seen:  # it tried, and found no database
        line = running.stderr.readline()
        assert line, f"migrate ended before it waited: {seen}"
        seen += line
    (later / ".s.PGSQL.5432").symlink_to(real / ".s.PGSQL.5432")
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 0, seen + stderr
    assert "migrating the database to head" in stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0004",)


def test_migrate_gives_up_on_an_absent_database_with_the_reason(tmp_path: Path) -> None:
    started = time.monotonic()
    running = migrate(f"postgresql://sonalyze@/sonalyze?host={tmp_path}", "--wait-s", "1.5")
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 1
    assert time.monotonic() - started >= 1.5
    assert "the database did not answer within 1.5 s" in stderr
    assert "Traceback" not in stderr


def test_migrate_does_not_wait_on_an_answer_waiting_cannot_change(empty_database: str) -> None:
    url = libpq(empty_database).replace(urlsplit(libpq(empty_database)).path, "/no_such_db")
    started = time.monotonic()
    running = migrate(url, "--wait-s", "60")
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 1
    assert time.monotonic() - started < 30, "it waited out --wait-s"
    assert "the database refused the connection: connection failed: " in stderr
    assert '"no_such_db" does not exist' in stderr


def test_migrate_leaves_a_schema_newer_than_the_code_alone(empty_database: str) -> None:
    """A rollback, or an old pod restarting during a rollout, meets a schema a newer release
    migrated: it starts, and changes nothing."""
    upgrade(empty_database)
    url = libpq(empty_database)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    before = schema(empty_database)
    running = migrate(url, "--wait-s", "5")
    _, stderr = running.communicate(timeout=60)
    assert running.returncode == 0, stderr
    assert "the schema is at 0099, newer than this code's migrations" in stderr
    assert schema(empty_database) == before
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0099",)
