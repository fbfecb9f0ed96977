"""The ``sonalyze`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sonalyze.stack.postgres import default_data_dir
from sonalyze.stack.processes import Console
from sonalyze.stack.temporary import temporary_stack
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
            "'ready: ws://127.0.0.1:PORT/v1/ws', 'open: http://127.0.0.1:PORT/' (the web app) "
            "and one line per service, then stream their logs. With --lan, phones on the LAN "
            "reach the gateway over HTTPS: it prints 'ready: wss://ADDRESS:PORT/v1/ws', "
            "'open: https://ADDRESS:PORT/', that address as a QR code and the certificate's "
            "SHA-256 fingerprint. Ctrl-C (SIGINT) or SIGTERM stops every service and Postgres."
        ),
    )
    up.add_argument(
        "--port",
        type=int,
        default=8000,
        help="gateway port, on 127.0.0.1 (on every interface with --lan) (default 8000)",
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
    lan = up.add_argument_group("phones on the LAN")
    lan.add_argument(
        "--lan",
        action="store_true",
        help=(
            "serve the gateway on every interface (0.0.0.0) over HTTPS and WSS, which phones "
            "need for the microphone; the other services stay on 127.0.0.1. Unless a "
            "certificate is given, a self-signed one is made once and kept in DATA_DIR.tls/ "
            "(made again when it expires or no longer names the LAN address)"
        ),
    )
    lan.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="with --lan: serve this PEM certificate (then its chain) instead; needs --tls-key",
    )
    lan.add_argument(
        "--tls-key",
        type=Path,
        metavar="FILE",
        help="with --lan: the unencrypted PEM private key of that certificate",
    )
    up.set_defaults(subparser=up)
    demo = commands.add_parser(
        "demo",
        help="measure and simulate a virtual room through a running stack, no phone needed",
        description=(
            "Against a running stack (sonalyze up), four virtual phones measure a virtual room "
            "(one speaker, three microphones with their own clock offsets, one at 44.1 kHz), "
            "then the same room is simulated; prints, per octave band, the measured T20, T30, "
            "EDT and C80 (mean +- spread), the virtual room's own values, the simulated ones, "
            "Sabine and Eyring. Progress goes to standard error; exit 1 if a step failed."
        ),
    )
    where = demo.add_mutually_exclusive_group()
    where.add_argument(
        "--url",
        default="ws://127.0.0.1:8000/v1/ws",
        help="the gateway's WebSocket (default ws://127.0.0.1:8000/v1/ws, sonalyze up's)",
    )
    where.add_argument(
        "--start",
        action="store_true",
        help="start a stack of its own (sonalyze up in a temporary directory) and stop it after",
    )
    demo.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from sonalyze import demo

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        with contextlib.ExitStack() as stack:
            if args.start:
                port = stack.enter_context(temporary_stack(say=progress))
                url = f"ws://127.0.0.1:{port}/v1/ws"
            else:
                url = args.url
            rows = asyncio.run(demo.run(url, progress))
    except OSError as exc:
        print(
            f"error: cannot reach a gateway at {args.url} ({exc}); is one running? start one: "
            "sonalyze up",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # every failure is the user's to read, as one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(demo.as_json(rows) if args.json else demo.table(rows))
    return 0


def _check_tls_options(args: argparse.Namespace) -> None:
    """--tls-cert and --tls-key go together, and with --lan (exit 2 otherwise)."""
    parser: argparse.ArgumentParser = args.subparser
    if (args.tls_cert is None) != (args.tls_key is None):
        given, missing = ("--tls-cert", "--tls-key")[:: 1 if args.tls_key is None else -1]
        parser.error(f"{given} needs {missing} (give both, or neither for a self-signed one)")
    if args.tls_cert is not None and not args.lan:
        parser.error("--tls-cert and --tls-key go with --lan")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(sys.stdout)
    if args.command == "up":
        _check_tls_options(args)
        return run_up(
            UpOptions(
                host_port=args.port,
                data_dir=args.data_dir or default_data_dir(),
                database_url=args.database_url,
                ready_timeout_s=args.ready_timeout,
                stop_timeout_s=15.0,
                lan=args.lan,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
            ),
            console,
        )
    if args.command == "demo":
        return _demo(args)
    return 2  # unreachable: argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
