"""Alembic environment: runs migrations on one connection under an advisory lock, so that
several migration runners (replicas, a Helm hook, ``sonalyze up``) never race."""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import sonalyze_storage.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from sonalyze_storage.settings import sqlalchemy_url

MIGRATION_LOCK = 0x534F4E414C595A45 & 0x7FFF_FFFF_FFFF_FFFE

config = context.config
url = (
    config.attributes.get("database_url")
    or config.get_main_option("sqlalchemy.url")
    or sqlalchemy_url(os.environ.get("SONALYZE_DATABASE_URL", ""))
)
if not url:
    raise SystemExit("no database URL: set SONALYZE_DATABASE_URL or sqlalchemy.url")

engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
with engine.connect() as connection:
    connection.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK)))
    connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            transaction_per_migration=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK)))
        connection.commit()
engine.dispose()
