"""``sonalyze up``: the whole system on this machine, one command, Ctrl-C stops it all; what
dies meanwhile is started again (:mod:`sonalyze.stack.supervise`), and nothing it started
outlives it (:mod:`sonalyze.lifeline`)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sonalyze.stack.lan import PublicGateway, lan_gateway, loopback_gateway
from sonalyze.stack.postgres import EmbeddedPostgres
from sonalyze.stack.processes import Console, ServiceProcess, wait_ready
from sonalyze.stack.supervise import supervise
from sonalyze.stack.tls import TlsError

# Start order; they stop in the reverse order, storage (and then Postgres) last.
SERVICES = ("storage", "lobby", "measurement", "simulation", "gateway")


@dataclass(frozen=True)
class UpOptions:
    host_port: int
    data_dir: Path
    database_url: str | None
    ready_timeout_s: float
    stop_timeout_s: float
    # --lan: the gateway on every interface over HTTPS, with this certificate or a kept
    # self-signed one (the other services stay on 127.0.0.1).
    lan: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int, host: str) -> bool:
    """Whether the gateway can listen on ``host:port``. SO_REUSEADDR as uvicorn sets it:
    connections of a previous run waiting out TIME_WAIT do not hold the port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _stop(services: list[ServiceProcess], timeout_s: float) -> None:
    """Stop the callers of storage together, then storage, so none loses its peer early."""
    callers = [s for s in services if s.name != "storage"]
    for service in callers:
        service.terminate()
    for service in callers:
        service.stop(timeout_s)
    for service in services:
        if service.name == "storage":
            service.stop(timeout_s)


def _device_token_secrets(data_dir: Path) -> str:
    """The gateway's signing secrets: from the environment, else one kept beside the data
    directory, so phones keep their identity when the stack restarts."""
    configured = os.environ.get("SONALYZE_DEVICE_TOKEN_SECRETS")
    if configured:
        return configured
    path = data_dir.with_name(data_dir.name + ".device-token-secret")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
    return json.dumps([path.read_text().strip()])


def _internal_token(data_dir: Path) -> tuple[str, Path]:
    """A new token for the services' internal calls, kept (readable by this user only) beside
    the data directory for the length of the run, so that their /docs pages can be tried."""
    token = secrets.token_urlsafe(32)
    path = data_dir.with_name(data_dir.name + ".internal-token")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A new file (never one already there, nor where a link points), put in place whole.
    fresh = path.with_name(f"{path.name}.{secrets.token_hex(4)}")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token)
    os.replace(fresh, path)
    return token, path


def _migrate(database_url: str, console: Console) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "sonalyze_storage", "migrate"],
        env={**os.environ, "SONALYZE_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    for line in (result.stdout + result.stderr).splitlines():
        console.line(f"{'migrate':<11} | {line}")
    return result.returncode == 0


def _public_gateway(options: UpOptions, console: Console) -> PublicGateway:
    """Where the gateway listens and how phones reach it; :class:`TlsError` if the
    certificate given cannot be used or none can be kept."""
    if not options.lan:
        return loopback_gateway(options.host_port)
    try:
        return lan_gateway(
            options.host_port, options.data_dir, options.tls_cert, options.tls_key, console
        )
    except OSError as exc:
        raise TlsError(f"cannot keep a certificate beside {options.data_dir}: {exc}") from exc


def run_up(options: UpOptions, console: Console) -> int:
    """Start everything, print the ready lines, and run until SIGINT, SIGTERM or SIGHUP."""
    if not _port_is_free(options.host_port, "0.0.0.0" if options.lan else "127.0.0.1"):
        console.line(f"error: port {options.host_port} is in use; choose another with --port")
        return 2
    try:
        public = _public_gateway(options, console)
    except TlsError as exc:
        console.line(f"error: {exc}")
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGHUP too: closing the terminal must not leave the services and Postgres behind.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    postgres = None
    services: list[ServiceProcess] = []
    token_path: Path | None = None
    try:
        database_url = options.database_url
        if database_url is None:
            console.line(f"starting embedded Postgres in {options.data_dir}")
            postgres = EmbeddedPostgres(options.data_dir)
            try:
                database_url = postgres.start()
            except Exception as exc:
                console.line(f"error: the embedded Postgres did not start: {exc}")
                return 1
        if stop.is_set():
            return 0
        if not _migrate(database_url, console):
            console.line("error: the migrations failed (see the lines above)")
            return 1
        ports = {name: _free_port() for name in SERVICES}
        ports["gateway"] = options.host_port
        token, token_path = _internal_token(options.data_dir)
        common = {
            "SONALYZE_HOST": "127.0.0.1",
            "SONALYZE_INTERNAL_TOKEN": token,
            "SONALYZE_STORAGE_URL": f"http://127.0.0.1:{ports['storage']}",
        }
        for name in SERVICES:
            env = {**common, "SONALYZE_PORT": str(ports[name])}
            tls = name == "gateway" and public.tls is not None
            if name == "storage":
                env["SONALYZE_DATABASE_URL"] = database_url
            if name in ("gateway", "lobby"):
                env["SONALYZE_MEASUREMENT_URL"] = f"http://127.0.0.1:{ports['measurement']}"
            if name == "gateway":
                env["SONALYZE_SIMULATION_URL"] = f"http://127.0.0.1:{ports['simulation']}"
            if name in ("gateway", "measurement"):
                env["SONALYZE_LOBBY_URL"] = f"http://127.0.0.1:{ports['lobby']}"
            if name == "gateway":
                env["SONALYZE_DEVICE_TOKEN_SECRETS"] = _device_token_secrets(options.data_dir)
                env.update(public.env())
            services.append(
                ServiceProcess(name, f"sonalyze_{name}", ports[name], env, console, tls=tls)
            )
        unready = wait_ready(services, options.ready_timeout_s, stop)
        if stop.is_set():
            return 0
        exited = [s for s in services if s.exit_code() is not None]
        if exited:
            console.line(f"error: {exited[0].name} exited with code {exited[0].exit_code()}")
            return 1
        if unready:
            names = ", ".join(s.name for s in unready)
            console.line(
                f"error: not ready after {options.ready_timeout_s:g} s: {names}; a busy machine "
                f"may need longer: --ready-timeout {max(180, 3 * options.ready_timeout_s):g}"
            )
            return 1
        public.announce(console)
        for service in sorted(services, key=lambda s: s.name != "gateway"):
            url = public.base_url if service.name == "gateway" else service.url
            console.line(f"{service.name} {url}")
        console.line(
            f"internal token: {token_path} (the services' /docs pages: Authorize with its text)"
        )
        return supervise(services, postgres, stop, console)
    finally:
        _stop(services, options.stop_timeout_s)
        if postgres is not None:
            postgres.stop()
        if token_path is not None:
            token_path.unlink(missing_ok=True)  # the run's token is no more
        if services or postgres is not None:
            console.line("stopped")
