"""Random sequences of WebSocket messages from three phones against the real gateway (with
storage, the lobby and measurement services behind it), generated and shrunk by hypothesis.

A step is one phone sending one thing: a command with a well-formed payload whose references
(the lobby's code and id, the phones' device ids, the last measurement) are filled in when it
is sent, a command of any type with any JSON payload, a text frame that is not a command, or a
binary frame (an upload frame for some measurement, or bytes). After each sequence:

- every command had exactly one reply, and no reply or refusal was ``internal``; every message
  the gateway sent is documented in the AsyncAPI document (the test phone checks each), and no
  phone was closed;
- each lobby's log in storage is numbered 1, 2, 3, ... and every event a phone got is the one
  storage numbered so; each phone got every event of the lobby it is in since it entered it;
- each lobby holds together: its host is a member, it has no more members than its limit, and
  its workflow is ``ready`` exactly when a measurement could start (a speaker and a
  microphone, every one of them ready and online), while it is idle or ready;
- the gateway is still ready and serves a new phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sonalyze import upload_frames
from sonalyze.protocol import COMMANDS
from sonalyze_gateway.settings import GatewaySettings
from tests.conftest import TOKEN
from tests.gateway.conftest import ORIGIN, SECRET
from tests.gateway.phone import Phone
from tests.gateway.test_measurement import (  # noqa: F401 (the stack with measurement)
    lobby_port,
    lobby_url,
    measurement_url,
    storage_settings,
)

PHONES = 3
REFS = ("$code", "$lobby", "$measurement", *(f"$member{i}" for i in range(PHONES)))

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(REFS),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.text(max_size=12), JSON, max_size=4)
MEMBERS = st.sampled_from([f"$member{i}" for i in range(PHONES)])
IDS = st.one_of(MEMBERS, st.sampled_from(REFS), st.uuids().map(str))
SWEEP_KEYS = ("duration", "lead_in", "tail", "f1", "f2", "sample_rate", "repeats", "amplitude")


def command(kind: str, **fields: Any) -> Any:
    return st.tuples(st.just(kind), st.fixed_dictionaries(fields))


SWEEPS = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"duration": st.integers(1, 3), "lead_in": st.sampled_from([0.5, 1])}),
    st.dictionaries(
        st.sampled_from(SWEEP_KEYS),
        st.one_of(st.integers(-10, 200_000), st.floats(-1e3, 1e6, allow_nan=False)),
        max_size=3,
    ),
)
# What the host (phone 0) mostly sends: roles for the members, the lock, a start and a stop.
HOSTS = st.one_of(
    command(
        "role.assign",
        device_id=st.one_of(MEMBERS, IDS),
        role=st.sampled_from(["microphone", "speaker", "observer", "host"]),
    ),
    command("lobby.lock", locked=st.booleans()),
    command("measurement.start", sweep=SWEEPS),
    command("measurement.abort"),
)
EVERYONES = st.one_of(
    command("role.update", status=st.sampled_from(["ready", "not_ready", "busy"])),
    command("lobby.join", code=st.sampled_from(["$code", "ZZZZ-ZZZ", ""])),
    command("lobby.leave"),
    command("lobby.create", name=st.text(max_size=90)),
    command("resume", lobby_id=st.sampled_from(["$lobby", "$code"]), after_seq=st.integers(-2, 60)),
    command("time.sync", t0=st.floats(allow_nan=False, allow_infinity=False)),
    command("measurement.status", measurement_id=IDS),
    command("measurement.upload", measurement_id=IDS, format=st.just({"container": "wav"})),
    command("analysis.request", measurement_id=IDS),
    command("simulation.status", job_id=IDS),
)
ANY_COMMAND = st.tuples(st.sampled_from([*COMMANDS, "lobby.explode"]), OBJECTS)
TEXT_FRAME = st.tuples(st.just("$text"), st.one_of(st.text(max_size=200), JSON.map(json.dumps)))
BINARY_FRAME = st.tuples(
    st.just("$binary"),
    st.one_of(
        st.binary(max_size=200),
        st.tuples(IDS, st.integers(0, 5), st.binary(max_size=64), st.booleans()),
    ),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([0, 0, 0, 1, 2]), HOSTS),
        st.tuples(st.integers(0, PHONES - 1), EVERYONES),
        st.tuples(st.integers(0, PHONES - 1), EVERYONES),
        st.tuples(st.integers(0, PHONES - 1), st.one_of(ANY_COMMAND, TEXT_FRAME, BINARY_FRAME)),
    ),
    min_size=1,
    max_size=40,
)


@pytest.fixture
def gateway_settings(
    storage_url: str,
    lobby_url: str,  # noqa: F811 (the fixture imported above)
    measurement_url: str,  # noqa: F811
) -> GatewaySettings:
    """Storage, lobby and measurement behind it; wrong join codes never lock the phones out
    (tests/gateway/test_join_guessing.py checks that limit), so the sequences get deep."""
    return GatewaySettings(
        storage_url=storage_url,
        lobby_url=lobby_url,
        measurement_url=measurement_url,
        internal_token=TOKEN,
        device_token_secrets=[SECRET],
        allowed_origins=[ORIGIN],
        join_failures=1_000_000,
    )


class Run:
    """What the phones of one sequence know, and what they were told."""

    def __init__(self, phones: list[Phone]) -> None:
        self.phones = phones
        self.code = "ABCD-EFG"
        self.lobby = str(uuid4())
        self.measurement = str(uuid4())
        self.replies: list[dict[str, Any]] = []
        self.entered: dict[int, tuple[str, int] | None] = dict.fromkeys(range(len(phones)))
        self.lobbies: set[str] = set()

    def fill(self, value: Any) -> Any:
        """``value`` with its references to this run's lobby, phones and measurement."""
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if value == "$code":
            return self.code
        if value == "$lobby":
            return self.lobby
        if value == "$measurement":  # the last one started, once a phone heard of it
            started = [
                e for p in self.phones for e in p.events if e["type"] == "measurement.started"
            ]
            return started[-1]["payload"]["measurement_id"] if started else self.measurement
        if isinstance(value, str) and value.startswith("$member"):
            return self.phones[int(value[7:])].device_id
        return value

    async def step(self, index: int, kind: str, body: Any) -> None:
        phone = self.phones[index]
        if kind == "$text":
            await phone.send_raw(body)
        elif kind == "$binary":
            if isinstance(body, tuple):
                target, chunk, data, final = body
                try:
                    body = upload_frames.encode(UUID(self.fill(target)), chunk, data, final=final)
                except ValueError:
                    body = data
            await phone.send_raw(body)
        else:
            reply = await phone.command(kind, self.fill(body))
            self.replies.append(reply)
            event(f"{kind}: {'ack' if reply['type'] == 'ack' else reply['payload']['code']}")
            self.learn(index, kind, reply)

    def learn(self, index: int, kind: str, reply: dict[str, Any]) -> None:
        if reply["type"] != "ack":
            return
        payload = reply["payload"]
        if kind in ("lobby.create", "lobby.join"):
            self.code, self.lobby = payload["code"], payload["lobby_id"]
            self.entered[index] = (payload["lobby_id"], payload["seq"])
            self.lobbies.add(payload["lobby_id"])
        elif kind == "resume":
            self.entered[index] = (payload["lobby_id"], payload["after_seq"])
        elif kind == "lobby.leave":
            self.entered[index] = None


def storage(url: str, path: str) -> Any:
    response = httpx.get(f"{url}/v1{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
    return response.json()


def can_measure(participants: list[dict[str, Any]]) -> bool:
    """The lobby's rule, said again: a speaker and a microphone, all ready and online."""
    active = [p for p in participants if p["role"] in ("speaker", "microphone")]
    return {"speaker", "microphone"} <= {p["role"] for p in active} and all(
        p["status"] == "ready" and p["presence"] == "online" for p in active
    )


async def check(run: Run, storage_url: str) -> None:
    assert not [r for r in run.replies if r["payload"].get("code") == "internal"], run.replies
    for phone in run.phones:
        if phone.reader.done():
            phone.reader.result()  # an undocumented message, say
        assert phone.ws.close_code is None, f"closed: {phone.ws.close_code} {phone.ws.close_reason}"
        assert not [m for m in phone.uncorrelated if m["payload"].get("code") == "internal"]
    logs = {}
    for lobby_id in run.lobbies:
        lobby = storage(storage_url, f"/lobbies/{lobby_id}")
        members = {p["device_id"] for p in lobby["participants"]}
        if lobby["closed_at"] is None:
            assert lobby["host_device_id"] in members, lobby
        assert len(members) <= lobby["max_members"], lobby
        if lobby["workflow_state"] in ("idle", "ready"):
            assert (lobby["workflow_state"] == "ready") == can_measure(lobby["participants"]), lobby
        log = storage(storage_url, f"/lobbies/{lobby_id}/events?limit=10000")
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1)), "numbered 1, 2, 3, ..."
        assert log[-1]["seq"] == lobby["last_seq"]
        logs[lobby_id] = {e["seq"]: e["type"] for e in log}
    for index, phone in enumerate(run.phones):
        entered = run.entered[index]
        if entered is not None:
            lobby_id, after = entered
            wanted = set(range(after + 1, max(logs[lobby_id]) + 1))

            def missing(
                phone: Phone = phone, lobby_id: str = lobby_id, wanted: set[int] = wanted
            ) -> set[int]:
                return wanted - {e["seq"] for e in phone.events if e.get("lobby") == lobby_id}

            with contextlib.suppress(TimeoutError):
                await phone.wait_until(lambda: not missing(), within_s=30)
            assert not missing(), f"phone {index} lacks events {sorted(missing())}"
        for message in phone.events:
            if "seq" in message and message["type"] != "lobby.state":
                assert logs[message["lobby"]][message["seq"]] == message["type"], message


def test_random_message_sequences_from_three_phones_keep_every_lobby_whole(
    gateway: str,
    storage_url: str,
) -> None:
    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(prepared=st.booleans(), steps=STEPS)
    def sequence(prepared: bool, steps: list[tuple[int, tuple[str, Any]]]) -> None:
        async def scenario() -> None:
            phones = [await Phone.connect(gateway) for _ in range(PHONES)]
            try:
                run = Run(phones)
                await run.step(0, "lobby.create", {})  # a lobby to start from, all in it
                for index in range(1, PHONES):
                    await run.step(index, "lobby.join", {"code": "$code"})
                if prepared:  # a speaker and a microphone, all ready: a start would be taken
                    for index, role in ((0, "speaker"), (1, "microphone")):
                        await run.step(
                            0, "role.assign", {"device_id": f"$member{index}", "role": role}
                        )
                    for index in range(PHONES):
                        await run.step(index, "role.update", {"status": "ready"})
                for index, (kind, body) in steps:
                    await run.step(index, kind, body)
                for phone in phones:  # a connection answers in order: the frames' replies are in
                    await phone.command("ping")
                await check(run, storage_url)
            finally:
                for phone in phones:
                    await phone.close()

        asyncio.run(scenario())

    sequence()
    ready = httpx.get(gateway.replace("ws://", "http://").replace("/v1/ws", "/readyz"))
    assert ready.status_code == 200

    async def still_serves() -> None:
        phone = await Phone.connect(gateway)
        assert (await phone.command("lobby.create", {}))["type"] == "ack"
        await phone.close()

    asyncio.run(still_serves())
