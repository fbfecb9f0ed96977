"""The host starts a measurement through the lobby service, with the measurement service and
storage on real HTTP: the measurement is designed for the lobby's roles and announced to every
member, and a start that cannot happen is refused and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sonalyze_lobby.app import create_app as create_lobby_app
from sonalyze_lobby.settings import LobbySettings
from sonalyze_measurement.app import create_app as create_measurement_app
from sonalyze_measurement.settings import MeasurementSettings
from tests.conftest import TOKEN, serving
from tests.storage.helpers import device

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHORT = {"duration": 1.0, "lead_in": 0.5, "tail": 1.0}


@pytest.fixture
def measurement_url(storage_url: str) -> Iterator[str]:
    settings = MeasurementSettings(storage_url=storage_url, internal_token=TOKEN)
    with serving(create_measurement_app(settings)) as url:
        yield url


@pytest.fixture
def lobby(storage_url: str, measurement_url: str) -> Iterator[httpx.Client]:
    settings = LobbySettings(
        storage_url=storage_url, internal_token=TOKEN, measurement_url=measurement_url
    )
    # A generous timeout: the first start waits for the measurement service, whose analysis
    # workers are starting on a machine that may be busy.
    with (
        serving(create_lobby_app(settings)) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as c,
    ):
        yield c


def ready_room(lobby: httpx.Client, api: httpx.Client) -> tuple[dict[str, Any], str, str]:
    """A lobby whose host is a ready speaker and whose other member a ready microphone."""
    host, mic = device(api), device(api)
    room = lobby.post("/v1/lobbies", json={"device_id": host}).json()["lobby"]
    lobby.post("/v1/lobbies/join", json={"device_id": mic, "code": room["code"]})
    url = f"/v1/lobbies/{room['id']}"
    for who, role in ((host, "speaker"), (mic, "microphone")):
        lobby.post(f"{url}/roles", json={"by_device_id": host, "device_id": who, "role": role})
        lobby.post(f"{url}/status", json={"device_id": who, "status": "ready"})
    assert lobby.get(url).json()["workflow_state"] == "ready"
    return room, host, mic


def test_the_hosts_measurement_is_announced_to_every_member(
    lobby: httpx.Client, api: httpx.Client, measurement_url: str
) -> None:
    room, host, mic = ready_room(lobby, api)
    response = lobby.post(
        f"/v1/lobbies/{room['id']}/measurements", json={"by_device_id": host, "sweep": SHORT}
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["lobby"]["workflow_state"] == "measuring"
    assert [e["type"] for e in changed["events"]] == ["workflow.changed", "measurement.started"]
    started = changed["events"][1]["payload"]
    assert (started["microphones"], started["speakers"]) == ([mic], [host])
    assert started["sweep"]["duration"] == 1.0
    with httpx.Client(base_url=measurement_url, headers=AUTH) as measurement:
        stored = measurement.get(f"/v1/measurements/{started['measurement_id']}").json()
    assert stored == started


@pytest.mark.parametrize(
    ("who", "sweep", "status", "words"),
    [
        ("mic", SHORT, 403, "only the host"),
        ("host", {"f1": -1}, 400, "sweep: f1"),
    ],
    ids=["not-host", "bad-sweep"],
)
def test_a_start_that_cannot_happen_is_refused_and_changes_nothing(
    lobby: httpx.Client,
    api: httpx.Client,
    snapshot,
    who: str,
    sweep: dict[str, Any],
    status: int,
    words: str,
) -> None:
    room, host, mic = ready_room(lobby, api)
    before = snapshot()
    by = host if who == "host" else mic
    response = lobby.post(
        f"/v1/lobbies/{room['id']}/measurements", json={"by_device_id": by, "sweep": sweep}
    )
    assert response.status_code == status and words in response.json()["message"]
    assert snapshot() == before


def test_a_lobby_that_is_not_ready_cannot_measure(lobby: httpx.Client, api: httpx.Client) -> None:
    room, host, mic = ready_room(lobby, api)
    lobby.post(f"/v1/lobbies/{room['id']}/status", json={"device_id": mic, "status": "not_ready"})
    refused = lobby.post(f"/v1/lobbies/{room['id']}/measurements", json={"by_device_id": host})
    assert refused.status_code == 409 and "ready and online" in refused.json()["message"]
    assert api.get(f"/v1/lobbies/{room['id']}/measurements").json() == []


def test_aborting_the_workflow_ends_the_measurement_under_way(
    lobby: httpx.Client, api: httpx.Client, measurement_url: str
) -> None:
    room, host, mic = ready_room(lobby, api)
    url = f"/v1/lobbies/{room['id']}"
    started = lobby.post(f"{url}/measurements", json={"by_device_id": host, "sweep": SHORT})
    mid = started.json()["events"][1]["payload"]["measurement_id"]
    aborted = lobby.post(f"{url}/workflow", json={"to": "aborted", "by_device_id": host})
    assert aborted.status_code == 200, aborted.text
    assert api.get(f"/v1/measurements/{mid}").json()["state"] == "aborted"
    with httpx.Client(base_url=measurement_url, headers=AUTH) as measurement:
        late = measurement.post(
            f"/v1/measurements/{mid}/recordings",
            json={"device_id": mic, "format": {"container": "wav"}},
        )
    assert late.status_code == 409 and "uploads are closed" in late.text
