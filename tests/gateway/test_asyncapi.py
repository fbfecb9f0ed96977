"""The AsyncAPI document in the repository is the one the protocol models describe, and it
documents every command, reply, event, error code and close code."""

from __future__ import annotations

import json
from pathlib import Path

from sonalyze import asyncapi, protocol
from sonalyze.errors import ErrorCode
from tests.gateway.phone import DOC, check_documented


def test_the_committed_document_is_up_to_date() -> None:
    assert json.loads(DOC.read_text()) == asyncapi.build(), (
        "regenerate: uv run python -m sonalyze.asyncapi > docs/asyncapi.json"
    )


def test_every_message_error_and_close_code_is_documented() -> None:
    document = json.loads(Path(DOC).read_text())
    messages = set(document["components"]["messages"])
    assert set(protocol.COMMANDS) | set(protocol.SERVER_EVENTS) <= messages
    assert {"ack", "error", "welcome"} <= messages
    assert document["info"]["x-error-codes"] == [c.value for c in ErrorCode]
    closes = document["info"]["x-close-codes"]
    assert {int(c) for c in closes} == {int(c) for c in protocol.CloseCode}
    assert all(v["reconnect"] == (4000 <= int(c) < 4100) for c, v in closes.items())


def test_the_schemas_refuse_what_the_gateway_must_not_send() -> None:
    lobby = "8f0e7c1a-0000-4000-8000-000000000000"
    good = {"v": 1, "type": "lobby.locked", "lobby": lobby, "seq": 3, "ts": 1.0,
            "payload": {"locked": True}}  # fmt: skip
    check_documented(good)
    for bad in (
        {**good, "seq": None},
        {**good, "payload": {"locked": "yes"}},
        {**good, "payload": {}},
        {"v": 1, "type": "error", "corr": None, "ts": 1.0, "payload": {"code": "oops"}},
    ):
        try:
            check_documented(bad)
        except Exception:
            continue
        raise AssertionError(f"accepted {bad}")
