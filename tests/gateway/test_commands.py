"""Protocol v1 over real WebSockets against the real stack: hello, commands and their replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sonalyze_gateway.app import create_app
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.phone import Phone


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_hello_issues_an_identity_that_a_later_hello_keeps(gateway: str) -> None:
    async def scenario() -> None:
        first = await Phone.connect(gateway)
        assert first.device_id and first.token
        await first.close()
        again = await Phone.connect(gateway, token=first.token)
        assert again.device_id == first.device_id
        await again.close()

    run(scenario())


def test_create_join_and_roles_reach_every_member_in_seq_order(gateway: str) -> None:
    async def scenario() -> None:
        host = await Phone.connect(gateway)
        created = await host.ok("lobby.create", {"name": "Hall"})
        assert len(created["code"]) == 7 and created["seq"] == 2
        snapshot = host.events[-1] if host.events else None
        guest = await Phone.connect(gateway)
        joined = await guest.ok("lobby.join", {"code": created["code"].lower()})
        assert joined["lobby_id"] == created["lobby_id"] and joined["seq"] == 3
        changed = await host.ok("role.assign", {"device_id": guest.device_id, "role": "microphone"})
        await guest.wait_for_seq(changed["seq"])
        await host.wait_for_seq(changed["seq"])
        assert host.log() == [(3, "participant.joined"), (4, "role.updated")]
        assert guest.log() == [(4, "role.updated")]
        state = next(e for e in guest.events if e["type"] == "lobby.state")
        assert state["seq"] == 3 and state["payload"]["host_device_id"] == host.device_id
        assert {m["device_id"] for m in state["payload"]["members"]} == {
            host.device_id,
            guest.device_id,
        }
        assert snapshot is None or snapshot["type"] == "lobby.state"
        for phone in (host, guest):
            await phone.close()

    run(scenario())


def test_a_repeated_command_id_is_answered_again_and_runs_once(
    gateway: str, snapshot: Callable[[], dict[str, str]]
) -> None:
    async def scenario() -> None:
        host = await Phone.connect(gateway)
        first = await host.command("lobby.create", {"name": "once"}, id="create-1")
        before = snapshot()
        again = await host.command("lobby.create", {"name": "once"}, id="create-1")
        assert again["payload"] == first["payload"] and again["corr"] == "create-1"
        assert snapshot() == before, "the repeat changed nothing"
        # From a new connection of the same device (a retry after a drop), the same reply,
        # and the same effect on that connection: it gets the snapshot and follows the lobby.
        other = await Phone.connect(gateway, token=host.token)
        third = await other.command("lobby.create", {"name": "once"}, id="create-1")
        assert third["payload"] == first["payload"]
        after = snapshot()
        assert (after["events"], after["lobbies"][:2]) == (before["events"], "1:")
        state = await other.wait_for_event("lobby.state")
        assert state["lobby"] == first["payload"]["lobby_id"]
        await host.close()
        await other.close()

    run(scenario())


def test_ping_and_time_sync(gateway: str) -> None:
    async def scenario() -> None:
        phone = await Phone.connect(gateway)
        assert await phone.ok("ping") == {}
        reply = await phone.ok("time.sync", {"t0": 123.5})
        assert reply["t0"] == 123.5 and reply["t1"] <= reply["t2"]
        await phone.close()

    run(scenario())


def test_metrics_count_connections_and_messages(gateway: str) -> None:
    async def scenario() -> None:
        phone = await Phone.connect(gateway)
        await phone.ok("ping")
        metrics_url = gateway.replace("ws://", "http://").replace("/v1/ws", "/metrics")
        async with httpx.AsyncClient() as client:
            text = (await client.get(metrics_url)).text
        assert "sonalyze_ws_connections 1.0" in text
        assert 'sonalyze_ws_messages_received_total{type="ping"} 1.0' in text
        assert 'sonalyze_ws_messages_sent_total{type="welcome"} 1.0' in text
        await phone.close()

    run(scenario())


def test_the_gateway_refuses_to_start_without_a_token_secret() -> None:
    with pytest.raises(ValueError, match="SONALYZE_DEVICE_TOKEN_SECRETS"):
        create_app(GatewaySettings())
