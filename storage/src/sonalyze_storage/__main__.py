"""``python -m sonalyze_storage [serve|migrate]``: run the service, or migrate the database."""

from __future__ import annotations

import argparse
import logging

from sonalyze.logs import configure_logging
from sonalyze.service import serve
from sonalyze_storage.app import create_app
from sonalyze_storage.migrate import (
    DatabaseUnreachable,
    unknown_revisions,
    upgrade,
    wait_for_database,
)
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
    parser.add_argument(
        "--wait-s",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="migrate: wait this long for the database to accept connections (default: 0)",
    )
    args = parser.parse_args()
    settings = StorageSettings()
    if args.command == "migrate":
        configure_logging("storage", settings.log_level, settings.log_format)
        log = logging.getLogger(__name__)
        url = settings.database_url.get_secret_value()
        try:
            wait_for_database(url, args.wait_s)
        except DatabaseUnreachable as error:
            log.error("%s", error)
            raise SystemExit(1) from None
        if newer := unknown_revisions(url):
            # Migrations only add, so this code can serve a newer schema; it must not undo it.
            log.warning(
                "the schema is at %s, newer than this code's migrations: leaving it as it is",
                ", ".join(newer),
            )
            return
        log.info("migrating the database to head")
        upgrade(url)
    else:
        serve("storage", create_app, settings)


if __name__ == "__main__":
    main()
