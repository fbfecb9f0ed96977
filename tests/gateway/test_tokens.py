"""Device tokens: a valid token names its device; expired, forged or odd ones are refused."""

from __future__ import annotations

import base64
import json
import time
from uuid import uuid4

import jwt
import pytest

from sonalyze.errors import ErrorCode, ServiceError
from sonalyze_gateway import tokens

SECRET, OLD = "current-secret-".ljust(32, "x"), "old-secret-".ljust(32, "y")


def refused(token: str, secrets: list[str]) -> str:
    with pytest.raises(ServiceError) as info:
        tokens.verify(token, secrets)
    assert info.value.code == ErrorCode.unauthorized
    return info.value.message


def test_a_token_names_its_device() -> None:
    device = uuid4()
    assert tokens.verify(tokens.issue(device, [SECRET], ttl_s=60), [SECRET]) == device


def test_rotation_verifies_old_tokens_and_signs_with_the_new_secret() -> None:
    device = uuid4()
    old = tokens.issue(device, [OLD], ttl_s=60)
    assert tokens.verify(old, [SECRET, OLD]) == device
    new = tokens.issue(device, [SECRET, OLD], ttl_s=60)
    assert tokens.verify(new, [SECRET]) == device
    assert "not valid" in refused(old, [SECRET])


def test_expired_token_is_refused_as_expired() -> None:
    stale = tokens.issue(uuid4(), [SECRET], ttl_s=3600, now=time.time() - 7200)
    assert "expired" in refused(stale, [SECRET])


def test_forged_tokens_are_refused() -> None:
    device = uuid4()
    good = tokens.issue(device, [SECRET], ttl_s=60)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = str(uuid4())
    other = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    wrong_issuer = jwt.encode({**claims, "iss": "someone"}, SECRET, algorithm="HS256")
    not_a_device = jwt.encode({**claims, "sub": "nobody"}, SECRET, algorithm="HS256")
    for forged in (f"{header}.{other}.{signature}", unsigned, wrong_issuer, not_a_device,
                   "garbage", "", good[:-2]):  # fmt: skip
        assert "not valid" in refused(forged, [SECRET])


def test_issuing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="no secret"):
        tokens.issue(uuid4(), [], ttl_s=60)
