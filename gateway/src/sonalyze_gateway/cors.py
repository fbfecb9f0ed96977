"""CORS for the gateway's downloads, so that a web app hosted on another origin (one of
``SONALYZE_ALLOWED_ORIGINS``) can fetch a sweep or an impulse response with the device token.

Starlette's middleware does the negotiation; a refused preflight answers 403 with the
gateway's ``{code, message}`` body instead of its plain text. The app the gateway serves itself
is same-origin and needs none of this.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from sonalyze.errors import ErrorCode

METHODS = ("GET", "HEAD")
HEADERS = ("authorization",)
MAX_AGE_S = 600


class DownloadCors(CORSMiddleware):
    """GET and HEAD with ``Authorization`` from the allowed origins (no cookies)."""

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        super().__init__(
            app,
            allow_origins=allowed_origins,
            allow_methods=METHODS,
            allow_headers=HEADERS,
            max_age=MAX_AGE_S,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        origin = request_headers["origin"][:80]
        method = request_headers["access-control-request-method"]
        message = (
            f"a page from {origin} may not send {method} here (allowed: GET and HEAD with "
            "Authorization, from the origins in SONALYZE_ALLOWED_ORIGINS)"
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        headers.pop("content-type", None)
        return JSONResponse(
            {"code": ErrorCode.forbidden.value, "message": message},
            status_code=403,
            headers=headers,
        )
