"""The measurement service over real HTTP on a real storage and Postgres: a measurement is
designed for the lobby's roles, recordings arrive in chunks in any order and are checked once
whole, uploads resume after a restart, and every bad request is refused and changes nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from sonalyze.measurement_api import MeasurementStarted
from sonalyze_measurement.sweeps import design, render
from tests.measurement.helpers import (
    SHORT,
    begin,
    chunks,
    put,
    recording_wav,
    room_with_roles,
    started,
)


def test_a_measurement_is_designed_for_the_lobbys_roles(
    measurement: httpx.Client, api: httpx.Client
) -> None:
    room, mics, speaker = room_with_roles(api)
    body = started(measurement, room)
    assert sorted(body["microphones"]) == sorted(mics)
    assert body["speakers"] == [speaker]
    assert body["sweep"]["duration"] == 1.0 and body["sweep"]["f1"] == 50.0
    assert body["recording_seconds"] == pytest.approx(2.5)
    assert body["play_at_ms"] == body["start_at_ms"] + 500, "the speakers play after the lead-in"
    with pytest.raises(ValidationError, match="play_at_ms must be start_at_ms plus"):
        MeasurementStarted.model_validate({**body, "play_at_ms": body["start_at_ms"]})
    assert body["sweep_path"] == f"/v1/measurements/{body['measurement_id']}/sweep.wav"
    wav = measurement.get(body["sweep_path"])
    assert wav.headers["content-type"] == "audio/wav"
    samples, rate = soundfile.read(io.BytesIO(wav.content), dtype="float64")
    assert rate == 48_000
    np.testing.assert_allclose(samples, render(design(**SHORT)).signal, atol=2**-23)
    assert measurement.get(f"/v1/measurements/{body['measurement_id']}").json() == body


def test_bad_designs_and_unknown_lobbies_are_refused(
    measurement: httpx.Client, api: httpx.Client, snapshot
) -> None:
    room, _, _ = room_with_roles(api)
    before = snapshot()
    bad = measurement.post("/v1/measurements", json={"lobby_id": room["id"], "sweep": {"f1": -5}})
    assert bad.status_code == 400 and "sweep: f1" in bad.json()["message"]
    unknown = measurement.post(
        "/v1/measurements", json={"lobby_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert unknown.status_code == 404
    assert snapshot() == before


def test_a_recording_arrives_in_any_order_and_is_checked_once_whole(
    measurement: httpx.Client, api: httpx.Client
) -> None:
    room, mics, _ = room_with_roles(api)
    mid = started(measurement, room)["measurement_id"]
    data = recording_wav()
    parts = chunks(data)
    status = begin(measurement, mid, mics[0]).json()
    assert (status["state"], status["received"], status["missing"]) == ("uploading", 0, [])
    last = len(parts) - 1
    assert (
        put(measurement, mid, mics[0], last, parts[last], final=True).json()["state"] == "uploading"
    )
    for index in reversed(range(1, last)):
        ack = put(measurement, mid, mics[0], index, parts[index]).json()
        assert (ack["created"], ack["state"]) == (True, "uploading")
    repeat = put(measurement, mid, mics[0], 1, parts[1]).json()
    assert repeat["created"] is False
    done = put(measurement, mid, mics[0], 0, parts[0]).json()
    assert (done["created"], done["state"], done["error"]) == (True, "complete", None)
    status = measurement.get(f"/v1/measurements/{mid}/status").json()
    assert status["waiting_for"] == [mics[1]]
    (only,) = status["recordings"]
    assert (only["state"], only["received"], only["expected_chunks"], only["missing"]) == (
        "complete",
        len(parts),
        len(parts),
        [],
    )
    log = api.get(f"/v1/lobbies/{room['id']}/events").json()
    assert log[-1]["type"] == "recording.received"
    assert log[-1]["payload"] == {"measurement_id": mid, "device_id": mics[0]}
    blob = api.get(f"/v1/recordings/{only['recording_id']}").json()["blob_id"]
    assert api.get(f"/v1/blobs/{blob}/content").content == data, "byte-identical"


def test_an_upload_resumes_after_a_restart_with_nothing_acknowledged_lost(
    service: Callable[[], AbstractContextManager[httpx.Client]], api: httpx.Client
) -> None:
    room, mics, _ = room_with_roles(api)
    parts = chunks(recording_wav())
    with service() as first:
        mid = started(first, room)["measurement_id"]
        begin(first, mid, mics[0])
        for index in (0, 2, 3):
            assert put(first, mid, mics[0], index, parts[index]).status_code == 200
    with service() as second:
        status = begin(second, mid, mics[0]).json()
        assert (status["received"], status["missing"]) == (3, [1])
        for index in (1, *range(4, len(parts) - 1)):
            put(second, mid, mics[0], index, parts[index])
        last = len(parts) - 1
        assert (
            put(second, mid, mics[0], last, parts[last], final=True).json()["state"] == "complete"
        )


def test_a_chunk_with_a_bad_crc_is_refused_and_asked_for_again(
    measurement: httpx.Client, api: httpx.Client, snapshot
) -> None:
    room, mics, _ = room_with_roles(api)
    mid = started(measurement, room)["measurement_id"]
    begin(measurement, mid, mics[0])
    put(measurement, mid, mics[0], 1, b"second chunk")
    before = snapshot()
    bad = put(measurement, mid, mics[0], 0, b"first chunk", crc=12345)
    assert bad.status_code == 400 and "CRC32 mismatch" in bad.json()["message"]
    assert snapshot() == before
    status = measurement.get(f"/v1/measurements/{mid}/status").json()["recordings"][0]
    assert status["missing"] == [0], "the chunk to send again"
    assert put(measurement, mid, mics[0], 0, b"first chunk").json()["created"] is True


def test_an_unusable_recording_is_marked_with_its_reason_and_blocks_no_other(
    measurement: httpx.Client, api: httpx.Client
) -> None:
    room, mics, _ = room_with_roles(api)
    mid = started(measurement, room)["measurement_id"]
    for mic, data in ((mics[0], recording_wav(level=0.0)), (mics[1], recording_wav())):
        begin(measurement, mid, mic)
        parts = chunks(data)
        for index, part in enumerate(parts):
            ack = put(measurement, mid, mic, index, part, final=index == len(parts) - 1)
        assert ack.status_code == 200
    states = {
        r["device_id"]: r
        for r in measurement.get(f"/v1/measurements/{mid}/status").json()["recordings"]
    }
    assert states[mics[0]]["state"] == "invalid"
    assert states[mics[0]]["error"].startswith("silent: ")
    assert states[mics[1]]["state"] == "complete"
    kinds = [
        (e["type"], e["payload"].get("reason"))
        for e in api.get(f"/v1/lobbies/{room['id']}/events").json()
        if e["type"].startswith("recording.")
    ]
    assert kinds == [("recording.invalid", "silent"), ("recording.received", None)]


def test_bad_upload_requests_are_refused_and_change_nothing(
    measurement: httpx.Client, api: httpx.Client, snapshot
) -> None:
    room, mics, speaker = room_with_roles(api)
    mid = started(measurement, room)["measurement_id"]
    begin(measurement, mid, mics[0])
    before = snapshot()
    cases = [
        (begin(measurement, mid, speaker), 403, "only the measurement's microphones"),
        (put(measurement, mid, mics[1], 0, b"x"), 404, "no upload begun"),
        (begin(measurement, mid, mics[0], "flac"), 409, "resume it in that format"),
        (put(measurement, mid, mics[0], 0, bytes(64 * 1024 + 1)), 413, "exceeds"),
        (begin(measurement, "00000000-0000-4000-8000-000000000000", mics[0]), 404, "not found"),
        (
            measurement.post(
                f"/v1/measurements/{mid}/recordings",
                json={"device_id": mics[0], "format": {"container": "raw"}},
            ),
            422,
            "",
        ),
    ]
    for response, code, words in cases:
        assert response.status_code == code, response.text
        assert words in response.text
    assert snapshot() == before


def test_chunks_that_contradict_the_final_one_are_refused_and_change_nothing(
    measurement: httpx.Client, api: httpx.Client, snapshot
) -> None:
    """The order rules: nothing beyond the final chunk, and one final chunk only."""
    room, mics, _ = room_with_roles(api)
    mid = started(measurement, room)["measurement_id"]
    begin(measurement, mid, mics[0])
    put(measurement, mid, mics[0], 2, b"the last", final=True)
    before = snapshot()
    beyond = put(measurement, mid, mics[0], 3, b"after the last")
    assert beyond.status_code == 409 and "beyond the final chunk 2" in beyond.json()["message"]
    other = put(measurement, mid, mics[0], 1, b"another last", final=True)
    assert other.status_code == 409 and "already 2" in other.json()["message"]
    assert snapshot() == before
    status = measurement.get(f"/v1/measurements/{mid}/status").json()["recordings"][0]
    assert (status["state"], status["missing"]) == ("uploading", [0, 1]), "nothing visible yet"
