"""Protocol v1: what a client may send, and the typed refusals of everything else."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from sonalyze import protocol
from sonalyze.errors import ErrorCode, ServiceError


def frame(type_: str, payload: object = None, **fields: object) -> str:
    body = {"v": 1, "type": type_, "id": "c1", **fields}
    if payload is not None:
        body["payload"] = payload
    return json.dumps(body)


def refused(text: str, code: ErrorCode = ErrorCode.bad_request) -> str:
    with pytest.raises(ServiceError) as info:
        protocol.parse_command(text)
    assert info.value.code == code
    return info.value.message


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        ("hello", {}),
        ("hello", {"token": "abc"}),
        ("lobby.create", {"name": "Hall"}),
        ("lobby.join", {"code": "ABC-DEFG"}),
        ("lobby.leave", None),
        ("role.assign", {"device_id": str(uuid4()), "role": "microphone"}),
        ("role.update", {"status": "ready"}),
        ("resume", {"lobby_id": str(uuid4()), "after_seq": 0}),
        ("ping", None),
        ("time.sync", {"t0": 1732437000123.5}),
    ],
)
def test_every_command_parses_to_its_payload_model(type_: str, payload: object) -> None:
    command = protocol.parse_command(frame(type_, payload))
    assert command.envelope.id == "c1"
    assert isinstance(command.payload, protocol.COMMANDS[type_])


def test_malformed_frames_get_bad_request_naming_the_problem() -> None:
    assert refused("{not json").startswith("not JSON")
    assert "v:" in refused(json.dumps({"v": 2, "type": "ping", "id": "x"}))
    assert "needs an id" in refused(json.dumps({"v": 1, "type": "ping"}))
    assert "unknown message type lobby.dance" in refused(frame("lobby.dance"))
    assert "payload.code" in refused(frame("lobby.join", {}))
    assert "payload.role" in refused(
        frame("role.assign", {"device_id": str(uuid4()), "role": "dj"})
    )
    assert "payload.after_seq" in refused(
        frame("resume", {"lobby_id": str(uuid4()), "after_seq": -1})
    )
    assert "payload.extra" in refused(frame("ping", {"extra": 1}))
    assert "colour" in refused(frame("ping", None, colour="red"))
    assert "id" in refused(frame("ping", None, id="x" * 65))


def test_a_simulation_request_is_checked_before_it_leaves_the_gateway() -> None:
    assert "payload.request" in refused(frame("simulation.request", {}))
    room = {"shape": "shoebox", "dimensions": [4, 3, 2.5]}
    outside = {"room": room, "materials": {"default": "brickwork"}, "sources": [[5, 1, 1]],
               "receivers": [[1, 1, 1]]}  # fmt: skip
    assert "sources[0] [5.0, 1.0, 1.0] is not inside the room" in refused(
        frame("simulation.request", {"request": outside})
    )
    assert "payload.job_id" in refused(frame("simulation.cancel", {"job_id": "nine"}))
    assert "measurement_id" in refused(frame("analysis.request", {}))


def test_close_codes_split_into_reconnect_and_do_not_reconnect() -> None:
    again = {c for c in protocol.CloseCode if protocol.should_reconnect(c)}
    assert again == {
        protocol.CloseCode.going_away,
        protocol.CloseCode.slow_consumer,
        protocol.CloseCode.idle_timeout,
        protocol.CloseCode.internal_error,
        protocol.CloseCode.over_capacity,
    }
    assert all(4000 <= c < 4200 for c in protocol.CloseCode)
    assert not protocol.should_reconnect(1000)


def test_a_measurement_from_a_service_before_play_at_ms_gets_it_derived() -> None:
    """During a rolling upgrade an older measurement service sends no play_at_ms."""
    from sonalyze.measurement_api import MeasurementStarted
    from sonalyze_measurement.sweeps import DEFAULT_SWEEP

    older = {
        "measurement_id": str(uuid4()),
        "lobby_id": str(uuid4()),
        "sweep": DEFAULT_SWEEP.model_dump(),
        "sweep_path": "/v1/measurements/x/sweep.wav",
        "start_at_ms": 1_000,
        "recording_seconds": 14.0,
        "microphones": [],
        "speakers": [],
    }
    assert MeasurementStarted.model_validate(older).play_at_ms == 1_000 + 1_000
    with pytest.raises(ValueError, match="play_at_ms must be start_at_ms plus"):
        MeasurementStarted.model_validate({**older, "play_at_ms": 5})
