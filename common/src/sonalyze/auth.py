"""The internal service token that calls between services carry."""

from __future__ import annotations

import hmac

import httpx
from fastapi import HTTPException, Request, status


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


async def require_internal_token(request: Request) -> None:
    """FastAPI dependency: refuse a call without the internal token, when one is configured.

    The token is compared in constant time and never logged. (Async, so FastAPI runs it on
    the event loop instead of handing every request to a worker thread.)
    """
    expected = request.app.state.settings.internal_token
    if expected is None:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.encode(), expected.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong internal service token",
            headers={"WWW-Authenticate": "Bearer"},
        )
