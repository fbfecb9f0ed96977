"""The host stops a measurement: the lobby hears it, the measurement ends unanalysed, its
uploads close, and the lobby is ready for the next one."""

from __future__ import annotations

import asyncio

from tests.gateway.test_measurement import (  # the measurement stack's fixtures
    SWEEP,
    gateway_settings,
    lobby_port,
    lobby_url,
    measurement_url,
    ready_lobby,
    storage_settings,
)

__all__ = [
    "gateway_settings",
    "lobby_port",
    "lobby_url",
    "measurement_url",
    "storage_settings",
]


def test_the_host_stops_a_measurement_and_the_lobby_is_ready_again(gateway: str) -> None:
    async def scenario() -> None:
        host, mic = await ready_lobby(gateway)
        await host.ok("measurement.start", {"sweep": SWEEP})
        started = (await mic.wait_for_event("measurement.started"))["payload"]
        mid = started["measurement_id"]
        refused = await mic.command("measurement.abort", {})
        assert refused["payload"]["code"] == "forbidden"

        await host.ok("measurement.abort", {})

        def states() -> list[str]:
            return [e["payload"]["state"] for e in mic.events if e["type"] == "workflow.changed"]

        await mic.wait_until(lambda: "aborted" in states() and states()[-1] == "ready")
        seen = states()
        assert seen[seen.index("measuring") :] == ["measuring", "aborted", "idle", "ready"]
        status = await host.ok("measurement.status", {"measurement_id": mid})
        assert status["state"] == "aborted"
        upload = await mic.command(
            "measurement.upload", {"measurement_id": mid, "format": {"container": "wav"}}
        )
        assert upload["payload"]["code"] == "conflict", upload

        await host.ok("measurement.start", {"sweep": SWEEP})  # the next one starts

        def started() -> list[str]:
            return [
                e["payload"]["measurement_id"]
                for e in mic.events
                if e["type"] == "measurement.started"
            ]

        await mic.wait_until(lambda: len(started()) == 2)
        assert started()[1] != mid
        for phone in (host, mic):
            await phone.close()

    asyncio.run(scenario())
