"""Logging setup: readable console lines locally, JSON lines in Kubernetes."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from sonalyze.settings import LogFormat

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_PROBE_PATHS = (" /livez ", " /readyz ", " /metrics ")


class ProbeFilter(logging.Filter):
    """Drops access-log lines of health probes and scrapes, which would drown the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(path in message for path in _PROBE_PATHS)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str, fmt: LogFormat) -> None:
    """Route every log record (uvicorn's included) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt is LogFormat.json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    logging.getLogger("uvicorn.access").addFilter(ProbeFilter())
    # httpx logs every request at INFO; calls between services are in the access logs already.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
