"""How storage refuses a request, for its operations' OpenAPI ``responses``.

Storage answers as FastAPI does, ``{"detail": ...}``, which the storage client reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Responses = dict[int | str, dict[str, Any]]


class Refusal(BaseModel):
    detail: str


class FieldError(BaseModel):
    """One field that failed validation, as FastAPI reports it."""

    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    """The fields that failed validation, or why the database cannot store a value or why the
    request cannot be carried out (a message)."""

    detail: str | list[FieldError]


_WHY = {
    400: "The body cannot be parsed, or the chunk is empty or does not match its CRC32.",
    404: "A row the request names does not exist.",
    409: "The row is at another version or has ended, or the request contradicts it.",
    413: "The body, a chunk or a blob is larger than storage takes.",
    503: "The database is busy or unreachable; retry shortly.",
}

# What any request may be answered with.
ANY_REQUEST: Responses = {
    401: {"model": Refusal, "description": "No internal token, or a wrong one."},
    413: {"model": Refusal, "description": _WHY[413]},
    422: {"model": Unprocessable, "description": "The request cannot be taken as it is."},
    503: {"model": Refusal, "description": _WHY[503]},
}


def refusals(*statuses: int) -> Responses:
    """The ``responses`` of an operation that also refuses with ``statuses``."""
    return {status: {"model": Refusal, "description": _WHY[status]} for status in statuses}
