"""Logs: JSON lines for Kubernetes, probe noise dropped, request logs of httpx quieted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from sonalyze.logs import configure_logging
from sonalyze.settings import LogFormat


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging sets process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("uvicorn.access").filters.clear()
    logging.getLogger("httpx").setLevel(logging.NOTSET)


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("lobby", "info", LogFormat.json)
    logging.getLogger("sonalyze.test").info("joined %s", "lobby")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("sonalyze.test").exception("failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["service"] == "lobby"
    assert (first["level"], first["logger"], first["msg"]) == (
        "info",
        "sonalyze.test",
        "joined lobby",
    )
    assert "ValueError: boom" in second["exc"]


def test_probe_requests_are_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("storage", "info", LogFormat.console)
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1:1", "GET", "/readyz", 200)
    access.info('%s - "%s %s HTTP/1.1" %d', "127.0.0.1:1", "GET", "/v1/devices", 201)
    logging.getLogger("httpx").info("HTTP Request: GET http://storage/readyz")
    err = capsys.readouterr().err
    assert "/v1/devices" in err
    assert "/readyz" not in err
