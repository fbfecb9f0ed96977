"""Device tokens: the signed identity a phone keeps and presents in ``hello``.

A token is a JWT (RFC 7519) signed with HMAC-SHA256, naming the device (``sub``) with an issue
and an expiry time. Verification pins the algorithm (no ``none``, no key confusion) and
accepts any of the configured secrets, so a secret can be rotated: sign with the new one
first in the list while tokens signed with the old one stay valid until it is removed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from uuid import UUID

import jwt

from sonalyze.errors import ErrorCode, ServiceError

ALGORITHM = "HS256"
ISSUER = "sonalyze-gateway"


def issue(device_id: UUID, secrets: Sequence[str], ttl_s: float, now: float | None = None) -> str:
    """A token for ``device_id``, signed with the first of ``secrets``, valid ``ttl_s``."""
    if not secrets:
        raise ValueError("no secret to sign device tokens with")
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(device_id), "iss": ISSUER, "iat": issued, "exp": issued + int(ttl_s)}
    return jwt.encode(claims, secrets[0], algorithm=ALGORITHM)


def verify(token: str, secrets: Sequence[str]) -> UUID:
    """The device a token names; ``unauthorized`` if it is expired, forged or malformed."""
    expired = False
    for secret in secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "iss", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            expired = True
            continue
        except jwt.InvalidTokenError:
            continue
        try:
            return UUID(claims["sub"])
        except (ValueError, TypeError):
            break
    if expired:
        raise ServiceError(ErrorCode.unauthorized, "the device token has expired")
    raise ServiceError(ErrorCode.unauthorized, "the device token is not valid")
