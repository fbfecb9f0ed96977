"""Shared fixtures: one embedded Postgres per test session, a fresh migrated database per test,
and real HTTP servers (uvicorn on loopback) for the apps under test."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from sonalyze_storage.app import create_app as create_storage_app
from sonalyze_storage.migrate import upgrade
from sonalyze_storage.settings import StorageSettings

TOKEN = "test-internal-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: FastAPI, port: int | None = None, **options: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on loopback in a thread; yields its base URL.
    ``options`` add to the :class:`uvicorn.Config` arguments."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        **{
            "host": "127.0.0.1",
            "port": port,
            "log_level": "warning",
            "timeout_graceful_shutdown": 1,
            **options,
        },
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """libpq URL of an embedded Postgres (pgserver) for the whole test session.

    Its data directory is not under pytest's numbered temp folders, which another pytest run
    on the same machine may prune while this one still uses them.
    """
    import pgserver

    server = pgserver.get_server(
        Path(tempfile.mkdtemp(prefix="sonalyze-test-pg-")), cleanup_mode="delete"
    )
    yield server.get_uri()
    server.cleanup()


def database_url_for(postgres: str, name: str) -> str:
    return postgres.replace("/postgres?", f"/{name}?", 1).replace(
        "postgresql://", "postgresql+psycopg://", 1
    )


@pytest.fixture(scope="session")
def template_db(postgres: str) -> str:
    """A database migrated to head, copied for each test."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE DATABASE sonalyze_template")
    upgrade(database_url_for(postgres, "sonalyze_template"))
    return "sonalyze_template"


@contextmanager
def new_database(postgres: str, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template`` if given), dropped afterwards; yields its
    SQLAlchemy URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    copy = f" TEMPLATE {template}" if template else ""
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}{copy}")
    try:
        yield database_url_for(postgres, name)
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def empty_database(postgres: str) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database (no schema)."""
    with new_database(postgres) as url:
        yield url


@pytest.fixture
def database_url(postgres: str, template_db: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database migrated to head."""
    with new_database(postgres, template_db) as url:
        yield url


def libpq(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def storage_settings(database_url: str) -> StorageSettings:
    return StorageSettings(
        database_url=database_url,
        internal_token=TOKEN,
        max_chunk_bytes=64 * 1024,
        max_blob_bytes=256 * 1024,
        max_request_bytes=128 * 1024,
    )


def with_room_for_audio(settings: StorageSettings) -> StorageSettings:
    """The test storage with room for whole recordings and impulse responses (16 MiB a blob),
    for the tests of the services that store audio."""
    return settings.model_copy(update={"max_blob_bytes": 16 * 1024 * 1024})


@pytest.fixture
def storage_url(storage_settings: StorageSettings) -> Iterator[str]:
    """Base URL of a storage service on real HTTP over a fresh database."""
    with serving(create_storage_app(storage_settings)) as url:
        yield url


@pytest.fixture
def api(storage_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for storage carrying the internal token."""
    with httpx.Client(
        base_url=storage_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def snapshot(database_url: str) -> Callable[[], dict[str, str]]:
    """A function returning a digest of every table's full content, to show nothing changed."""

    def take() -> dict[str, str]:
        with psycopg.connect(libpq(database_url)) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            digest = {}
            for table in tables:
                row = conn.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                    f" FROM {table} t"
                ).fetchone()
                assert row is not None
                digest[table] = f"{row[0]}:{row[1]}"
            return digest

    return take


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A real Kubernetes API server (:mod:`tests.kube_apiserver`), shared by the session's
    ``kubernetes`` tests; they skip, with the reason, where it cannot be started."""
    from tests.kube_apiserver import apiserver, missing

    if (why := missing()) is not None:
        pytest.skip(why)
    with apiserver() as server:
        yield server
