"""The internal service token that calls between services carry."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status


def require_internal_token(request: Request) -> None:
    """FastAPI dependency: refuse a call without the internal token, when one is configured.

    The token is compared in constant time and never logged.
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
