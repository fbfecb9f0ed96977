"""Bad input gets a 4xx with a clear message and leaves the database unchanged."""

from __future__ import annotations

import httpx
import pytest

from tests.storage.helpers import device, lobby

UNKNOWN = "00000000-0000-0000-0000-00000000beef"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def world(api: httpx.Client) -> dict[str, str]:
    created = lobby(api)
    return {"lobby": created["id"], "host": created["host_device_id"], "phone": device(api)}


def cases(w: dict[str, str]) -> list[tuple[str, str, dict, int, str]]:
    lobby_url = f"/v1/lobbies/{w['lobby']}"
    return [
        (
            "POST",
            "/v1/lobbies",
            {"content": b"{not json", "headers": JSON},
            422,
            "JSON decode error",
        ),
        ("POST", "/v1/lobbies", {"content": b"{not json"}, 422, "valid dictionary"),
        (
            "POST",
            "/v1/lobbies",
            {"json": {"code": "ab", "host_device_id": w["host"]}},
            422,
            "string_pattern_mismatch",
        ),
        (
            "POST",
            "/v1/lobbies",
            {"json": {"code": "ABCD9999", "host_device_id": UNKNOWN}},
            404,
            f"device {UNKNOWN} not found",
        ),
        (
            "POST",
            "/v1/lobbies",
            {"json": {"code": "ABCD9999", "host_device_id": w["host"], "max_members": "many"}},
            422,
            "int_type",
        ),
        (
            "POST",
            "/v1/lobbies",
            {"json": {"code": "ABCD9999", "host_device_id": w["host"], "colour": "red"}},
            422,
            "extra_forbidden",
        ),
        ("GET", f"/v1/lobbies/{UNKNOWN}", {}, 404, "not found"),
        ("GET", "/v1/lobbies/not-a-uuid", {}, 422, "uuid_parsing"),
        ("POST", f"{lobby_url}/changes", {"json": {"name": "x"}}, 422, "missing"),
        (
            "POST",
            f"{lobby_url}/changes",
            {"json": {"expected_version": 1, "workflow_state": "dancing"}},
            422,
            "enum",
        ),
        (
            "POST",
            f"{lobby_url}/changes",
            {"json": {"expected_version": 1, "upsert_participants": [{"device_id": UNKNOWN}]}},
            404,
            "not found",
        ),
        (
            "POST",
            f"{lobby_url}/changes",
            {
                "json": {
                    "expected_version": 1,
                    "upsert_participants": [{"device_id": w["phone"], "role": "drummer"}],
                }
            },
            422,
            "enum",
        ),
        (
            "POST",
            f"{lobby_url}/changes",
            {
                "json": {
                    "expected_version": 1,
                    "upsert_participants": [{"device_id": w["phone"], "status": None}],
                }
            },
            422,
            "status cannot be null",
        ),
        (
            "POST",
            f"{lobby_url}/changes",
            {"json": {"expected_version": 1, "host_device_id": w["phone"]}},
            409,
            "host",
        ),
        (
            "POST",
            f"{lobby_url}/changes",
            {"json": {"expected_version": 7}},
            409,
            "version 1, not 7",
        ),
        (
            "POST",
            f"/v1/lobbies/{UNKNOWN}/changes",
            {"json": {"expected_version": 1}},
            404,
            "not found",
        ),
        ("POST", f"{lobby_url}/events", {"json": {"events": []}}, 422, "too_short"),
        (
            "POST",
            f"{lobby_url}/events",
            {"json": {"events": [{"type": "Not A Type"}]}},
            422,
            "string_pattern_mismatch",
        ),
        (
            "POST",
            f"{lobby_url}/events",
            {"json": {"events": [{"type": "x", "payload": []}]}},
            422,
            "dict_type",
        ),
        (
            "POST",
            f"/v1/lobbies/{UNKNOWN}/events",
            {"json": {"events": [{"type": "x"}]}},
            404,
            "not found",
        ),
        ("GET", f"/v1/lobbies/{UNKNOWN}/events", {}, 404, "not found"),
        ("GET", f"{lobby_url}/events", {"params": {"after_seq": "x"}}, 422, "int_parsing"),
        (
            "POST",
            f"{lobby_url}/events",
            {"json": {"events": [{"type": "x", "payload": {"blob": "a" * 200_000}}]}},
            413,
            "exceeds the limit",
        ),
        ("POST", "/v1/measurements", {"json": {"lobby_id": UNKNOWN, "spec": {}}}, 404, "not found"),
        (
            "POST",
            "/v1/simulation-jobs",
            {"json": {"client_request_id": "", "spec": {}}},
            422,
            "string_too_short",
        ),
        (
            "POST",
            "/v1/simulation-jobs",
            {"json": {"client_request_id": "r", "spec": {}, "events": [{"type": "x"}]}},
            422,
            "without a lobby",
        ),
        (
            "PATCH",
            f"/v1/analyses/{UNKNOWN}",
            {"json": {"expected_version": 1, "state": "running"}},
            404,
            "not found",
        ),
        (
            "PATCH",
            f"/v1/simulation-jobs/{UNKNOWN}",
            {"json": {"expected_version": 1, "state": "running", "progress": 2}},
            422,
            "less_than_equal",
        ),
        # Only JSON's own types, as the schema says: no "3" for 3, no false for 0.
        (
            "PATCH",
            f"/v1/simulation-jobs/{UNKNOWN}",
            {"json": {"expected_version": 1, "state": "running", "progress": False}},
            422,
            "float_type",
        ),
        (
            "PATCH",
            f"/v1/analyses/{UNKNOWN}",
            {"json": {"expected_version": "1", "state": "running"}},
            422,
            "int_type",
        ),
        (
            "POST",
            f"{lobby_url}/changes",
            {"json": {"expected_version": 1, "locked": 1}},
            422,
            "bool_type",
        ),
        (
            "POST",
            "/v1/lobbies",
            {"json": {"code": "ABCD9999", "host_device_id": w["host"], "max_members": True}},
            422,
            "int_type",
        ),
    ]


def odd_values(w: dict[str, str]) -> list[tuple[str, str, dict, int, str]]:
    """Values JSON can carry but Postgres cannot store, and bodies too large to announce."""
    events_url = f"/v1/lobbies/{w['lobby']}/events"

    def payload(value: bytes) -> dict:
        body = b'{"events": [{"type": "x", "payload": {"a": %s}}]}' % value
        return {"headers": JSON, "content": body}

    unannounced = {"headers": JSON, "content": (b" " * 4096 for _ in range(64))}
    return [
        ("POST", events_url, payload(b'"nul\\u0000"'), 422, "cannot store"),
        ("POST", events_url, payload(b"NaN"), 422, "cannot store"),
        ("POST", events_url, payload(b"1e400"), 422, "cannot store"),
        ("POST", events_url, payload(b'"\\ud800"'), 422, "cannot store"),
        ("GET", "/v1/lobbies/by-code/AB%00CD", {}, 422, "cannot store"),
        ("POST", events_url, unannounced, 413, "exceeds the limit"),
        ("POST", "/v1/blobs/00000000-0000-0000-0000-000000000000/complete",
         {"json": {"chunk_count": 10**9}}, 422, "less_than_equal"),
    ]  # fmt: skip


@pytest.mark.parametrize("table", [cases, odd_values], ids=["bad_requests", "odd_values"])
def test_each_bad_request_is_refused_clearly_and_changes_nothing(
    api: httpx.Client, world: dict[str, str], snapshot, table
) -> None:
    before = snapshot()
    for method, url, kwargs, status, words in table(world):
        response = api.request(method, url, **kwargs)
        assert response.status_code == status, (method, url, response.text)
        assert words in response.text, (method, url, response.text)
        assert snapshot() == before, (method, url)
    assert api.get("/livez").status_code == 200, "the connection survived every refusal"


def test_calls_without_the_internal_token_are_refused(storage_url: str, snapshot) -> None:
    before = snapshot()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = httpx.post(f"{storage_url}/v1/devices", headers=headers)
        assert response.status_code == 401
        assert "internal service token" in response.json()["detail"]
    assert snapshot() == before
    assert httpx.get(f"{storage_url}/livez").status_code == 200, "health stays open"
