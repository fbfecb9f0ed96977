"""What a browser page meets at the gateway: its own origin admitted by default, refusals it
can read, CORS on the downloads for another origin, one error shape, and the app's files."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sonalyze.protocol import SUBPROTOCOL, CloseCode
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import ORIGIN, gateway_serving
from tests.gateway.phone import Phone


@pytest.fixture
def same_origin_gateway(gateway_settings: GatewaySettings) -> Iterator[str]:
    """A gateway with no origin allowed but its own."""
    with gateway_serving(gateway_settings.model_copy(update={"allowed_origins": []})) as url:
        yield url


async def outcome(url: str, **options: Any) -> object:
    """``"open"`` if the connection is admitted (it answers a hello), else the close code and
    reason it reads."""
    options.setdefault("subprotocols", [SUBPROTOCOL])
    ws = await connect(url, **options)
    try:
        await ws.send('{"v":1,"type":"hello","id":"h","payload":{}}')
        reply = await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code, exc.rcvd.reason
    await ws.close()
    assert '"welcome"' in str(reply)
    return "open"


def test_a_page_from_the_gateways_own_origin_connects_and_other_sites_read_4104(
    same_origin_gateway: str,
) -> None:
    port = same_origin_gateway.split(":")[2].split("/")[0]
    own = f"http://127.0.0.1:{port}"

    async def scenario() -> dict[str, object]:
        return {
            "own": await outcome(same_origin_gateway, origin=own),
            "no origin (an app)": await outcome(same_origin_gateway),
            "https behind a TLS front door": await outcome(
                same_origin_gateway,
                origin=f"https://127.0.0.1:{port}",
                additional_headers={"X-Forwarded-Proto": "https"},
            ),
            "another port": await outcome(same_origin_gateway, origin="http://127.0.0.1:1"),
            "another scheme": await outcome(
                same_origin_gateway, origin=f"https://127.0.0.1:{port}"
            ),
            "another site": await outcome(same_origin_gateway, origin="https://evil.test"),
        }

    seen = asyncio.run(scenario())
    assert seen["own"] == seen["no origin (an app)"] == "open"
    assert seen["https behind a TLS front door"] == "open"
    for case in ("another port", "another scheme", "another site"):
        code, reason = seen[case]  # type: ignore[misc]
        assert code == CloseCode.forbidden_origin, case
        assert "may not connect here" in reason, case


def test_a_page_under_a_name_the_gateway_does_not_know_is_refused(
    gateway_settings: GatewaySettings,
) -> None:
    """DNS rebinding: a site whose name was made to point at the gateway sends Origin and
    Host alike; only names the gateway serves its app under count as its own."""
    known = gateway_settings.model_copy(
        update={"allowed_origins": [], "app_hosts": ["*.home.test"]}
    )

    async def scenario(url: str) -> dict[str, object]:
        port = int(url.split(":")[2].split("/")[0])

        async def page_at(name: str) -> object:
            # Host: name:port, while the connection goes to 127.0.0.1.
            return await outcome(
                f"ws://{name}:{port}/v1/ws",
                host="127.0.0.1",
                port=port,
                origin=f"http://{name}:{port}",
            )

        return {
            "rebound": await page_at("attacker.test"),
            "listed": await page_at("studio.home.test"),
            "localhost": await page_at("localhost"),
        }

    with gateway_serving(known) as url:
        seen = asyncio.run(scenario(url))
    assert seen["listed"] == seen["localhost"] == "open"
    code, reason = seen["rebound"]  # type: ignore[misc]
    assert code == CloseCode.forbidden_origin
    assert "attacker.test" in reason


def test_a_listed_origin_connects_and_a_full_gateway_says_so(
    gateway_settings: GatewaySettings,
) -> None:
    settings = gateway_settings.model_copy(update={"max_connections": 1})

    async def holding(url: str) -> Phone:
        """The one connection, once the gateway has let go of the one before (it frees the
        slot when it has seen that one close, which a busy machine delays)."""
        async with asyncio.timeout(30):
            while True:
                try:
                    return await Phone.connect(url)
                except (ConnectionError, ConnectionClosed):
                    await asyncio.sleep(0.1)

    async def scenario(url: str) -> object:
        listed = await outcome(url, origin=ORIGIN)
        holder = await holding(url)
        try:
            full = await outcome(url)
        finally:
            await holder.close()
        return listed, full

    with gateway_serving(settings) as url:
        listed, full = asyncio.run(scenario(url))
    assert listed == "open"
    assert full == (CloseCode.over_capacity, "the gateway is full; retry with backoff")


def test_downloads_answer_cors_for_allowed_origins_and_every_refusal_is_code_and_message(
    gateway: str,
) -> None:
    http = gateway.replace("ws://", "http://").removesuffix("/v1/ws")
    sweep = f"{http}/v1/measurements/00000000-0000-0000-0000-000000000000/sweep.wav"
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with httpx.Client(timeout=10) as client:
        allowed = client.options(sweep, headers={"Origin": ORIGIN, **preflight})
        refused = client.options(sweep, headers={"Origin": "https://evil.test", **preflight})
        post = client.options(
            sweep, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        unauthorised = client.get(sweep, headers={"Origin": ORIGIN})
        wrong_method = client.post(sweep)
        nowhere = client.get(f"{http}/v1/nothing-here")
        bad_id = client.get(f"{http}/v1/measurements/not-a-uuid/sweep.wav")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    for answer in (refused, post):
        assert answer.status_code == 403
        assert answer.json()["code"] == "forbidden"
        assert "may not send" in answer.json()["message"]
    # A refusal a page from an allowed origin can read (the CORS header is on it too).
    assert unauthorised.status_code == 401
    assert unauthorised.headers["access-control-allow-origin"] == ORIGIN
    assert unauthorised.json()["code"] == "unauthorized"
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {
        "code": "bad_request",
        "message": f"POST is not allowed on {sweep.removeprefix(http)}; use GET",
    }
    assert nowhere.status_code == 404
    assert nowhere.json() == {"code": "not_found", "message": "nothing at /v1/nothing-here"}
    assert bad_id.status_code == 422
    assert bad_id.json()["code"] == "bad_request"
    assert "measurement_id" in bad_id.json()["message"]


def test_the_app_is_served_with_its_safety_headers(gateway: str) -> None:
    http = gateway.replace("ws://", "http://").removesuffix("/v1/ws")
    with httpx.Client(timeout=10) as client:
        home = client.get(f"{http}/")
        link = client.get(f"{http}/j/K7M2QXR")
        module = client.get(f"{http}/app/main.js")
        qr = client.get(f"{http}/app/qr.svg", params={"text": f"{http}/j/K7M2QXR"})
        too_long = client.get(f"{http}/app/qr.svg", params={"text": "x" * 301})
        missing = client.get(f"{http}/app/no-such-file.js")
    assert home.status_code == link.status_code == 200
    assert home.text == link.text and '<script type="module" src="/app/main.js">' in home.text
    csp = home.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert home.headers["permissions-policy"].startswith("microphone=(self)")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert module.headers["cache-control"] == "no-cache" and module.headers["etag"]
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.startswith("<svg")
    assert too_long.status_code == 422 and too_long.json()["code"] == "bad_request"
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_host_locks_the_lobby_and_only_the_host_may(gateway: str) -> None:
    async def scenario() -> None:
        host, guest, late = [await Phone.connect(gateway) for _ in range(3)]
        code = (await host.ok("lobby.create", {}))["code"]
        await guest.ok("lobby.join", {"code": code})
        refused = await guest.command("lobby.lock", {"locked": True})
        assert refused["payload"]["code"] == "forbidden"
        changed = await host.ok("lobby.lock", {"locked": True})
        locked = await guest.wait_for_event("lobby.locked")
        assert locked["payload"] == {"locked": True} and locked["seq"] == changed["seq"]
        reply = await late.command("lobby.join", {"code": code})
        assert reply["payload"]["code"] == "forbidden"
        assert (await guest.ok("lobby.join", {"code": code}))["code"] == code  # a member may
        await host.ok("lobby.lock", {"locked": False})
        await late.ok("lobby.join", {"code": code})
        for phone in (host, guest, late):
            await phone.close()

    asyncio.run(scenario())
