"""``python -m sonalyze_storage [serve|migrate]``: run the service, or migrate the database."""

from __future__ import annotations

import argparse
import logging

from sonalyze.logs import configure_logging
from sonalyze.service import serve
from sonalyze_storage.app import create_app
from sonalyze_storage.migrate import upgrade
from sonalyze_storage.settings import StorageSettings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sonalyze_storage",
        description="Sonalyze storage. Settings come from SONALYZE_* environment variables.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate"],
        help="serve: run the HTTP service (default); migrate: upgrade the schema to head",
    )
    args = parser.parse_args()
    settings = StorageSettings()
    if args.command == "migrate":
        configure_logging("storage", settings.log_level, settings.log_format)
        logging.getLogger(__name__).info("migrating the database to head")
        upgrade(settings.database_url.get_secret_value())
    else:
        serve("storage", create_app, settings)


if __name__ == "__main__":
    main()
