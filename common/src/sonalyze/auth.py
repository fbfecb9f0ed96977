"""The internal service token that calls between services carry."""

from __future__ import annotations

import hmac
from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


def internal_client(
    base_url: str,
    token: str | None,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An HTTP client for another service's API, carrying the internal token when set."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
    )


# Declared as HTTP bearer authentication, so that the OpenAPI documents say how to call the
# internal APIs and their /docs pages offer to authorize with the token.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="internalToken",
    description="The token services send each other (sonalyze up prints where it keeps it).",
)


async def require_internal_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> None:
    """FastAPI dependency: refuse a call without the internal token, when one is configured.

    The token is compared in constant time and never logged. (Async, so FastAPI runs it on
    the event loop instead of handing every request to a worker thread.)
    """
    expected = request.app.state.settings.internal_token
    if expected is None:
        return
    presented = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong internal service token",
            headers={"WWW-Authenticate": "Bearer"},
        )
