"""The lobby service over real HTTP, on a real storage and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from sonalyze.domain import ParticipantStatus
from sonalyze.measurement_client import MeasurementClient
from sonalyze.storage_api import LobbyChange, LobbyRead
from sonalyze.storage_client import StorageClient
from sonalyze_lobby import rules
from sonalyze_lobby.app import create_app
from sonalyze_lobby.lobbies import Lobbies
from sonalyze_lobby.settings import LobbySettings
from tests.conftest import TOKEN, serving
from tests.storage.helpers import device

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def lobby(storage_url: str) -> Iterator[httpx.Client]:
    """A client of a lobby service whose lobbies hold at most 10 members."""
    settings = LobbySettings(storage_url=storage_url, internal_token=TOKEN, max_members=10)
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        yield client


def created(lobby: httpx.Client, api: httpx.Client) -> tuple[dict, str]:
    host = device(api)
    response = lobby.post("/v1/lobbies", json={"device_id": host, "name": "Studio"})
    assert response.status_code == 201, response.text
    return response.json()["lobby"], host


def test_nine_phones_join_at_once_and_every_change_is_one_event(
    lobby: httpx.Client, api: httpx.Client
) -> None:
    room, host = created(lobby, api)
    phones = [device(api) for _ in range(9)]
    typed = room["code"].lower()[:3] + "-" + room["code"].lower()[3:]

    async def join_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(lobby.base_url), headers=AUTH) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/lobbies/join", json={"device_id": p, "code": typed})
                    for p in phones
                )
            )

    assert all(r.status_code == 200 for r in asyncio.run(join_all()))
    state = lobby.get(f"/v1/lobbies/{room['id']}").json()
    assert {p["device_id"] for p in state["participants"]} == {host, *phones}
    log = api.get(f"/v1/lobbies/{room['id']}/events").json()
    assert [e["seq"] for e in log] == list(range(1, 12))
    assert [e["type"] for e in log[:2]] == ["lobby.created", "participant.joined"]
    assert sorted(e["payload"]["device_id"] for e in log[2:]) == sorted(phones)
    again = lobby.post("/v1/lobbies/join", json={"device_id": phones[0], "code": room["code"]})
    assert again.status_code == 200 and again.json()["events"] == [], "a rejoin changes nothing"
    eleventh = lobby.post("/v1/lobbies/join", json={"device_id": device(api), "code": room["code"]})
    assert eleventh.status_code == 409
    assert eleventh.json() == {"code": "conflict", "message": "the lobby is full (10)"}


def test_roles_statuses_and_the_workflow(lobby: httpx.Client, api: httpx.Client) -> None:
    room, host = created(lobby, api)
    mic = device(api)
    lobby.post("/v1/lobbies/join", json={"device_id": mic, "code": room["code"]})
    url = f"/v1/lobbies/{room['id']}"
    for who, role in ((host, "speaker"), (mic, "microphone")):
        r = lobby.post(f"{url}/roles", json={"by_device_id": host, "device_id": who, "role": role})
        assert r.status_code == 200, r.text
    lobby.post(f"{url}/status", json={"device_id": host, "status": "ready"})
    ready = lobby.post(f"{url}/status", json={"device_id": mic, "status": "ready"}).json()
    assert ready["lobby"]["workflow_state"] == "ready"
    assert [e["type"] for e in ready["events"]] == ["role.updated", "workflow.changed"]
    illegal = lobby.post(f"{url}/workflow", json={"to": "analyzing"})
    assert illegal.status_code == 409
    assert illegal.json()["code"] == "conflict"
    assert (
        lobby.post(f"{url}/workflow", json={"to": "measuring", "by_device_id": host}).json()[
            "lobby"
        ]["workflow_state"]
        == "measuring"
    )


def test_non_host_is_forbidden_and_nothing_changes(
    lobby: httpx.Client, api: httpx.Client, snapshot
) -> None:
    room, _ = created(lobby, api)
    phone = device(api)
    lobby.post("/v1/lobbies/join", json={"device_id": phone, "code": room["code"]})
    url = f"/v1/lobbies/{room['id']}"
    stranger = device(api)
    cases = [
        (
            f"{url}/roles",
            {"by_device_id": phone, "device_id": phone, "role": "speaker"},
            403,
            "forbidden",
        ),
        (f"{url}/lock", {"by_device_id": phone, "locked": True}, 403, "forbidden"),
        ("/v1/lobbies/join", {"device_id": phone, "code": "ABC"}, 400, "bad_request"),
        ("/v1/lobbies/join", {"device_id": phone, "code": "2222222"}, 404, "not_found"),
        (f"{url}/status", {"device_id": phone, "status": "maybe"}, 422, None),
        (f"{url}/leave", {"device_id": stranger}, 404, "not_found"),
    ]
    before = snapshot()
    for path, body, status, code in cases:
        response = lobby.post(path, json=body)
        assert response.status_code == status, (path, response.text)
        if code:
            assert response.json()["code"] == code
        assert snapshot() == before, path


def test_host_leaving_passes_the_host_on_and_the_last_one_closes(
    lobby: httpx.Client, api: httpx.Client
) -> None:
    room, host = created(lobby, api)
    phone = device(api)
    lobby.post("/v1/lobbies/join", json={"device_id": phone, "code": room["code"]})
    url = f"/v1/lobbies/{room['id']}"
    left = lobby.post(f"{url}/leave", json={"device_id": host}).json()
    assert left["lobby"]["host_device_id"] == phone
    closed = lobby.post(f"{url}/leave", json={"device_id": phone}).json()
    assert closed["lobby"]["closed_at"] is not None
    assert [e["type"] for e in closed["events"]] == ["participant.left", "lobby.closed"]
    gone = lobby.post("/v1/lobbies/join", json={"device_id": phone, "code": room["code"]})
    assert gone.status_code == 404


def test_two_replicas_decide_right_on_remembered_state(storage_url: str) -> None:
    """A replica decides on the state it last saw; another replica's change in between must
    neither be undone nor hide a change that is still needed."""
    ready, not_ready = ParticipantStatus.ready, ParticipantStatus.not_ready

    async def scenario() -> None:
        async with StorageClient(storage_url, TOKEN) as storage:
            unused = MeasurementClient("http://127.0.0.1:9")
            a, b = Lobbies(storage, unused, 10), Lobbies(storage, unused, 10)
            host = (await storage.create_device()).id
            made = (await a.create(host, None)).lobby

            def status(to: ParticipantStatus) -> Callable[[LobbyRead], LobbyChange | None]:
                return lambda lobby: rules.update_status(lobby, host, to)

            await b.apply(made.id, status(ready))
            # a remembers not_ready: "nothing to change" must be checked on fresh state.
            back = await a.apply(made.id, status(not_ready))
            assert [e.type for e in back.events] == ["role.updated"]
            await b.apply(made.id, status(ready))
            # a remembers not_ready again; its change is refused as stale, then is a no-op.
            same = await a.apply(made.id, status(ready))
            assert same.events == [] and same.lobby.participants[0].status == ready
            final = await storage.get_lobby(made.id)
            assert final.last_seq == made.last_seq + 3

    asyncio.run(scenario())
