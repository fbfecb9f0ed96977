"""Migrations are the only way the schema is made, and they agree with the models."""

from __future__ import annotations

import os
import subprocess
import sys

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
