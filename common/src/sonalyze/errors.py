"""The documented error codes, shared by the services' HTTP APIs and the phone protocol.

A service refuses a request by raising :class:`ServiceError`; :func:`install_error_handler`
turns it into an HTTP answer ``{"code", "message"}`` with the status that fits the code, and a
caller maps that body back to the same code. :func:`refusals` documents those answers in an
operation's OpenAPI ``responses``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder as jsonable
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException


class ErrorCode(StrEnum):
    bad_request = "bad_request"
    unauthorized = "unauthorized"
    forbidden = "forbidden"
    not_found = "not_found"
    conflict = "conflict"
    rate_limited = "rate_limited"
    too_large = "too_large"
    unavailable = "unavailable"
    internal = "internal"


HTTP_STATUS = {
    ErrorCode.bad_request: 400,
    ErrorCode.unauthorized: 401,
    ErrorCode.forbidden: 403,
    ErrorCode.not_found: 404,
    ErrorCode.conflict: 409,
    ErrorCode.rate_limited: 429,
    ErrorCode.too_large: 413,
    ErrorCode.unavailable: 503,
    ErrorCode.internal: 500,
}


class ErrorBody(BaseModel):
    """A refusal as an HTTP API answers it."""

    code: ErrorCode
    message: str


class InvalidBody(ErrorBody):
    """A request that failed validation (:func:`install_validation_handler`): ``message`` names
    the first wrong field, ``detail`` is FastAPI's list of every error."""

    detail: list[dict[str, Any]]


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for an operation that refuses with ``statuses`` as
    :class:`ErrorBody`, and with 422 as :class:`InvalidBody`."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": "`{code, message}` with a documented code"}
        for status in statuses
    }
    responses[422] = {"model": InvalidBody, "description": "The request failed validation."}
    return responses


class ServiceError(Exception):
    """A refusal with a documented code and a message meant for the user."""

    def __init__(self, code: ErrorCode, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


def install_error_handler(app: FastAPI) -> None:
    """Answer every :class:`ServiceError` as ``{"code", "message"}`` with its HTTP status."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return JSONResponse(
            {"code": exc.code.value, "message": exc.message}, status_code=HTTP_STATUS[exc.code]
        )

    app.add_exception_handler(ServiceError, handle)


# The code of an HTTP refusal the framework makes itself (no such route, wrong method).
_HTTP_CODES = {
    401: ErrorCode.unauthorized,
    403: ErrorCode.forbidden,
    404: ErrorCode.not_found,
    413: ErrorCode.too_large,
    429: ErrorCode.rate_limited,
    503: ErrorCode.unavailable,
}


def install_http_error_handler(app: FastAPI) -> None:
    """Answer the framework's own refusals (404 no such path, 405 wrong method, ...) as
    ``{"code", "message"}`` with their status too, so that a public API has one error shape."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        default = ErrorCode.bad_request if status < 500 else ErrorCode.internal
        code = _HTTP_CODES.get(status, default)
        if status == 405:
            allowed = exc.headers.get("Allow", "") if exc.headers else ""
            message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        elif status == 404:
            message = f"nothing at {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(
            {"code": code.value, "message": message}, status_code=status, headers=exc.headers
        )

    app.add_exception_handler(HTTPException, handle)


def install_validation_handler(app: FastAPI) -> None:
    """Answer a request body that fails validation as ``{"code": "bad_request", "message",
    "detail"}`` with 422: the message names the first wrong field and says why; ``detail`` is
    FastAPI's list of every error."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"][1:])  # past "body"/"query"
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return JSONResponse(
            {"code": ErrorCode.bad_request.value, "message": message, "detail": jsonable(errors)},
            status_code=422,
        )

    app.add_exception_handler(RequestValidationError, handle)
