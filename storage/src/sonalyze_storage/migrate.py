"""Running the Alembic migrations: the only way the schema is made."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    """An Alembic config for this package's migrations against ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(files("sonalyze_storage") / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (a no-op when it is there already)."""
    command.upgrade(alembic_config(database_url), revision)
