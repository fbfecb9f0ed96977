"""Bad input over real WebSockets: each case gets its documented error or close code, and
nothing changes in storage."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sonalyze.protocol import CloseCode
from sonalyze_gateway import tokens
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import ORIGIN, SECRET, gateway_serving
from tests.gateway.phone import Phone


@dataclass
class Lobby:
    url: str
    host: Phone
    guest: Phone
    code: str


def expired_token(device_id: str) -> str:
    return tokens.issue(uuid.UUID(device_id), [SECRET], ttl_s=60, now=time.time() - 3600)


def forged_token(device_id: str) -> str:
    claims = {"sub": device_id, "iss": tokens.ISSUER, "iat": int(time.time()), "exp": 2**31}
    return jwt.encode(claims, "not-the-secret-0123456789abcdefgh", algorithm="HS256")


async def error_of(phone: Phone, frame: str | None = None, **command: Any) -> object:
    """The error code of a command's reply; of a raw frame's reply, the code and its corr."""
    if frame is None:
        reply = await phone.command(command["kind"], command.get("payload"))
        assert reply["type"] == "error", reply
        return reply["payload"]["code"]
    await phone.send_raw(frame)
    reply = await phone.wait_for_uncorrelated()
    assert reply["type"] == "error", reply
    return reply["payload"]["code"], reply["corr"]


async def close_of(phone: Phone, frame: str | bytes) -> int | None:
    await phone.send_raw(frame)
    code, _ = await phone.closed()
    return code


async def new_phone(lobby: Lobby, **options: Any) -> Phone:
    return await Phone.connect(lobby.url, **options)


Case = Callable[[Lobby], Awaitable[object]]


async def malformed_json(lobby: Lobby) -> object:
    return await error_of(lobby.guest, "{not json")


async def unknown_type(lobby: Lobby) -> object:
    return await error_of(lobby.guest, json.dumps({"v": 1, "type": "lobby.dance", "id": "d1"}))


async def missing_field(lobby: Lobby) -> object:
    return await error_of(lobby.guest, kind="lobby.join", payload={})


async def deeply_nested(lobby: Lobby) -> object:
    return await error_of(lobby.guest, "[" * 50_000)


async def mistyped_field(lobby: Lobby) -> object:
    return await error_of(lobby.guest, kind="role.update", payload={"status": 5})


async def wrong_version(lobby: Lobby) -> object:
    return await error_of(lobby.guest, json.dumps({"v": 2, "type": "ping", "id": "p1"}))


async def oversize_frame(lobby: Lobby) -> object:
    frame = json.dumps({"v": 1, "type": "ping", "id": "big", "payload": {"x": "a" * 70_000}})
    return await close_of(lobby.guest, frame)


async def far_oversize_frame(lobby: Lobby) -> object:
    """Beyond what the server reads at all (512 KiB by default): 1009 before it is read."""
    frame = json.dumps({"v": 1, "type": "ping", "id": "huge", "payload": {"x": "a" * 600_000}})
    return await close_of(lobby.guest, frame)


async def binary_frame(lobby: Lobby) -> object:
    """Binary frames are upload chunks: anything else is refused, and the connection stays."""
    await lobby.guest.send_raw(b'{"v": 1, "type": "ping", "id": "b1"}')
    refused = (await lobby.guest.wait_for_event("upload.refused"))["payload"]
    assert (await lobby.guest.ok("ping")) == {}
    return refused["code"], refused["index"]


async def oversize_upload(lobby: Lobby) -> object:
    return await close_of(lobby.guest, b"SZ" + bytes(300 * 1024))


async def command_before_hello(lobby: Lobby) -> object:
    phone = await new_phone(lobby, hello=False)
    return await error_of(phone, kind="lobby.join", payload={"code": lobby.code})


async def expired(lobby: Lobby) -> object:
    phone = await new_phone(lobby, hello=False)
    reply = await phone.command("hello", {"token": expired_token(lobby.guest.device_id or "")})
    return reply["payload"]["code"], (await phone.closed())[0]


async def forged(lobby: Lobby) -> object:
    phone = await new_phone(lobby, hello=False)
    reply = await phone.command("hello", {"token": forged_token(lobby.guest.device_id or "")})
    return reply["payload"]["code"], (await phone.closed())[0]


async def oversize_token(lobby: Lobby) -> object:
    """10 kB of token: not one the gateway issued, so unauthorized like any other."""
    phone = await new_phone(lobby, hello=False)
    reply = await phone.command("hello", {"token": "x" * 10_000})
    return reply["payload"]["code"], (await phone.closed())[0]


async def refusal(url: str, **options: Any) -> object:
    """The close code and reason a refused connection reads (a page can read these, unlike
    an HTTP refusal of the upgrade)."""
    async with connect(url, **options) as ws:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
    return "open"


async def wrong_origin(lobby: Lobby) -> object:
    return await refusal(lobby.url, subprotocols=["sonalyze.v1"], origin="https://evil.test")


async def no_subprotocol(lobby: Lobby) -> object:
    return await refusal(lobby.url)


async def assign_by_non_host(lobby: Lobby) -> object:
    payload = {"device_id": lobby.host.device_id, "role": "observer"}
    return await error_of(lobby.guest, kind="role.assign", payload=payload)


async def guessing_codes(lobby: Lobby) -> object:
    codes = []
    for _ in range(12):
        reply = await lobby.guest.command("lobby.join", {"code": "ZZZZ-ZZZ"})
        codes.append(reply["payload"]["code"])
    last = reply["payload"]
    assert last["retry_after_ms"] > 0
    return codes


CASES: list[tuple[str, Case, object]] = [
    ("malformed JSON", malformed_json, ("bad_request", None)),
    ("unknown type", unknown_type, ("bad_request", "d1")),
    ("missing field", missing_field, "bad_request"),
    ("mistyped field", mistyped_field, "bad_request"),
    ("deeply nested JSON", deeply_nested, ("bad_request", None)),
    ("wrong version", wrong_version, ("bad_request", "p1")),
    ("oversize frame", oversize_frame, CloseCode.message_too_large),
    ("far oversize frame", far_oversize_frame, 1009),
    ("binary frame", binary_frame, ("bad_request", None)),
    ("oversize upload frame", oversize_upload, CloseCode.message_too_large),
    ("command before hello", command_before_hello, "unauthorized"),
    ("expired token", expired, ("unauthorized", CloseCode.unauthorized)),
    ("forged token", forged, ("unauthorized", CloseCode.unauthorized)),
    ("oversize token", oversize_token, ("unauthorized", CloseCode.unauthorized)),
    (
        "wrong Origin",
        wrong_origin,
        (CloseCode.forbidden_origin, "pages from https://evil.test may not connect here"),
    ),
    (
        "no subprotocol",
        no_subprotocol,
        (CloseCode.subprotocol_required, "offer the subprotocol sonalyze.v1"),
    ),
    ("role.assign by non-host", assign_by_non_host, "forbidden"),
    ("repeated wrong codes", guessing_codes, ["not_found"] * 10 + ["rate_limited"] * 2),
]


@pytest.fixture
def lobby_gateway(gateway_settings: GatewaySettings) -> Iterator[str]:
    with gateway_serving(gateway_settings) as url:
        yield url


@pytest.mark.parametrize(
    ("case", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_its_documented_answer_and_changes_nothing(
    lobby_gateway: str, snapshot: Callable[[], dict[str, str]], case: Case, expected: object
) -> None:
    async def scenario() -> None:
        host = await Phone.connect(lobby_gateway, origin=ORIGIN)
        created = await host.ok("lobby.create", {})
        guest = await Phone.connect(lobby_gateway)
        await guest.ok("lobby.join", {"code": created["code"]})
        before = snapshot()
        outcome = await case(Lobby(lobby_gateway, host, guest, created["code"]))
        assert outcome == expected
        await asyncio.sleep(0.1)  # anything the refusal might have started has landed
        assert snapshot() == before

    asyncio.run(scenario())


def test_no_hello_within_the_time_allowed_closes_4102(gateway_settings: GatewaySettings) -> None:
    settings = gateway_settings.model_copy(update={"hello_timeout_s": 0.3})

    async def scenario(url: str) -> None:
        phone = await Phone.connect(url, hello=False)
        assert (await phone.closed())[0] == CloseCode.hello_timeout

    with gateway_serving(settings) as url:
        asyncio.run(scenario(url))
