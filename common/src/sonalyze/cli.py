"""The ``sonalyze`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sonalyze.stack.postgres import default_data_dir
from sonalyze.stack.processes import Console
from sonalyze.stack.up import UpOptions, run_up


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonalyze",
        description="Sonalyze: measure and simulate room acoustics with phones.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up = commands.add_parser(
        "up",
        help="run the whole system locally (Postgres, migrations, five services)",
        description=(
            "Start an embedded Postgres (or use --database-url), run the migrations, start the "
            "five services on 127.0.0.1, wait until all are ready, print "
            "'ready: ws://127.0.0.1:PORT/v1/ws' and one line per service, then stream their "
            "logs. Ctrl-C (SIGINT) or SIGTERM stops every service and Postgres."
        ),
    )
    up.add_argument(
        "--port", type=int, default=8000, help="gateway port on 127.0.0.1 (default 8000)"
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"embedded Postgres data directory (default {default_data_dir()})",
    )
    up.add_argument(
        "--database-url",
        default=os.environ.get("SONALYZE_DATABASE_URL"),
        help="use this Postgres instead of the embedded one (default $SONALYZE_DATABASE_URL)",
    )
    up.add_argument(
        "--ready-timeout", type=float, default=60.0, help="seconds to wait for readiness"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(sys.stdout)
    if args.command == "up":
        return run_up(
            UpOptions(
                host_port=args.port,
                data_dir=args.data_dir or default_data_dir(),
                database_url=args.database_url,
                ready_timeout_s=args.ready_timeout,
                stop_timeout_s=15.0,
            ),
            console,
        )
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
