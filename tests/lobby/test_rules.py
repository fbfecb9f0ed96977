"""The lobby's rules, decided on snapshots (no I/O)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from sonalyze.domain import ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.storage_api import LobbyRead, ParticipantRead
from sonalyze_lobby import rules

T0 = datetime(2026, 1, 1, tzinfo=UTC)


CONN = UUID(int=1000)


def member(i: int, role: Role | None = None, ready: bool = False, online: bool = True):
    return ParticipantRead(
        connection_id=CONN,
        device_id=UUID(int=i + 1),
        role=role,
        status=ParticipantStatus.ready if ready else ParticipantStatus.not_ready,
        presence=Presence.online if online else Presence.offline,
        joined_at=T0 + timedelta(seconds=i),
    )


def lobby(*participants: ParticipantRead, state=WorkflowState.idle, **extra) -> LobbyRead:
    fields = {
        "id": uuid4(), "code": "ABCDEFG", "name": None, "workflow_state": state,
        "max_members": 10, "locked": False, "version": 3, "last_seq": 7, "created_at": T0,
        "closed_at": None, "participants": list(participants),
        "host_device_id": participants[0].device_id,
    }  # fmt: skip
    return LobbyRead(**{**fields, **extra})


def refused(code: ErrorCode, call, *args) -> str:
    with pytest.raises(ServiceError) as info:
        call(*args)
    assert info.value.code == code
    return info.value.message


def test_join_codes_have_at_least_30_bits_and_no_look_alikes() -> None:
    assert math.log2(len(rules.CODE_ALPHABET)) * rules.CODE_LENGTH >= 30
    assert not set("0O1IL") & set(rules.CODE_ALPHABET)
    codes = {rules.new_join_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == rules.CODE_LENGTH and set(c) <= set(rules.CODE_ALPHABET) for c in codes)


def test_typed_codes_are_normalized_and_look_alikes_named() -> None:
    assert rules.normalize_code(" abc-defg ") == "ABCDEFG"
    assert "0O" in refused(ErrorCode.bad_request, rules.normalize_code, "ABCDE0O")
    refused(ErrorCode.bad_request, rules.normalize_code, "ABC")


def test_every_change_names_the_version_it_was_decided_on() -> None:
    change = rules.join(lobby(member(0)), UUID(int=99))
    assert change is not None and change.expected_version == 3
    assert [e.type for e in change.events] == ["participant.joined"]


def test_join_refusals_and_rejoin() -> None:
    host = member(0)
    assert rules.join(lobby(host), host.device_id) is None, "a member joining again: no change"
    refused(ErrorCode.forbidden, rules.join, lobby(host, locked=True), UUID(int=99))
    refused(ErrorCode.conflict, rules.join, lobby(host, member(1), max_members=2), UUID(int=99))


def test_host_passes_to_the_longest_standing_member_and_last_out_closes() -> None:
    a, b, c = member(0), member(1), member(2)
    change = rules.leave(lobby(a, c, b), a.device_id)
    assert change.host_device_id == b.device_id
    assert change.events[0].payload == {
        "device_id": str(a.device_id),
        "host_device_id": str(b.device_id),
    }
    last = rules.leave(lobby(a), a.device_id)
    assert last.close and [e.type for e in last.events] == ["participant.left", "lobby.closed"]
    refused(ErrorCode.not_found, rules.leave, lobby(a), UUID(int=99))


def test_only_the_host_assigns_roles_and_not_during_a_measurement() -> None:
    host, phone = member(0), member(1)
    message = refused(ErrorCode.forbidden, rules.assign_role, lobby(host, phone), phone.device_id,
                      host.device_id, Role.speaker)  # fmt: skip
    assert "host" in message
    change = rules.assign_role(lobby(host, phone), host.device_id, phone.device_id, Role.speaker)
    assert change is not None and change.events[0].payload["role"] == "speaker"
    running = lobby(host, phone, state=WorkflowState.measuring)
    refused(
        ErrorCode.conflict,
        rules.assign_role,
        running,
        host.device_id,
        phone.device_id,
        Role.microphone,
    )


def test_workflow_becomes_ready_when_a_speaker_and_a_microphone_are_ready_and_online() -> None:
    host = member(0, Role.speaker, ready=True)
    mic = member(1, Role.microphone)
    change = rules.update_status(lobby(host, mic), mic.device_id, ParticipantStatus.ready)
    assert change is not None and change.workflow_state == WorkflowState.ready
    assert change.events[-1].type == "workflow.changed"
    ready_mic = member(1, Role.microphone, ready=True)
    gone = rules.update_presence(
        lobby(host, ready_mic, state=WorkflowState.ready), mic.device_id, Presence.offline, CONN
    )
    assert gone is not None and gone.workflow_state == WorkflowState.idle


def test_presence_follows_the_newest_connection() -> None:
    host, phone = member(0), member(1)
    newer = uuid4()
    moved = rules.update_presence(lobby(host, phone), phone.device_id, Presence.online, newer)
    assert moved is not None and moved.events == [], "a new connection while online is silent"
    assert moved.upsert_participants[0].connection_id == newer
    moved_phone = phone.model_copy(update={"connection_id": newer})
    # The old connection's close, seen late, changes nothing; the new one's close does.
    assert (
        rules.update_presence(lobby(host, moved_phone), phone.device_id, Presence.offline, CONN)
        is None
    )
    gone = rules.update_presence(lobby(host, moved_phone), phone.device_id, Presence.offline, newer)
    assert gone is not None and [e.type for e in gone.events] == ["participant.presence"]
    assert gone.events[0].payload == {"device_id": str(phone.device_id), "presence": "offline"}
    offline = member(1, online=False)
    back = rules.update_presence(lobby(host, offline), phone.device_id, Presence.online, newer)
    assert back is not None and back.events[0].payload["presence"] == "online"


@pytest.mark.parametrize(
    ("start", "to", "allowed"),
    [
        (WorkflowState.idle, WorkflowState.measuring, False),
        (WorkflowState.ready, WorkflowState.measuring, True),
        (WorkflowState.measuring, WorkflowState.uploading, True),
        (WorkflowState.measuring, WorkflowState.idle, False),
        (WorkflowState.uploading, WorkflowState.analyzing, True),
        (WorkflowState.analyzing, WorkflowState.idle, True),
        (WorkflowState.uploading, WorkflowState.aborted, True),
        (WorkflowState.aborted, WorkflowState.idle, True),
        (WorkflowState.aborted, WorkflowState.measuring, False),
    ],
)
def test_workflow_transitions(start: WorkflowState, to: WorkflowState, allowed: bool) -> None:
    ready = lobby(
        member(0, Role.speaker, ready=True), member(1, Role.microphone, ready=True), state=start
    )
    if allowed:
        # Back to idle after a measurement with everyone still ready is ready for the next.
        after = (WorkflowState.analyzing, WorkflowState.aborted)
        expected = WorkflowState.ready if to == WorkflowState.idle and start in after else to
        assert rules.move_workflow(ready, to, None).workflow_state == expected
    else:
        assert "cannot go" in refused(ErrorCode.conflict, rules.move_workflow, ready, to, None)


def test_measuring_needs_everyone_ready() -> None:
    not_ready = lobby(
        member(0, Role.speaker, ready=True), member(1, Role.microphone), state=WorkflowState.ready
    )
    assert "speaker and a microphone" in refused(
        ErrorCode.conflict, rules.move_workflow, not_ready, WorkflowState.measuring, None
    )


def test_a_finished_measurement_leaves_the_lobby_ready_only_if_everyone_still_is() -> None:
    speaker = member(0, Role.speaker, ready=True)
    done = rules.move_workflow(
        lobby(speaker, member(1, Role.microphone, ready=True), state=WorkflowState.analyzing),
        WorkflowState.idle,
        None,
    )
    assert [(e.payload["previous"], e.payload["state"]) for e in done.events] == [
        ("analyzing", "idle"),
        ("idle", "ready"),
    ]
    tired = rules.move_workflow(
        lobby(speaker, member(1, Role.microphone), state=WorkflowState.analyzing),
        WorkflowState.idle,
        None,
    )
    assert tired.workflow_state == WorkflowState.idle and len(tired.events) == 1


def test_a_host_who_moves_a_ready_lobby_to_idle_gets_idle() -> None:
    ready = lobby(
        member(0, Role.speaker, ready=True),
        member(1, Role.microphone, ready=True),
        state=WorkflowState.ready,
    )
    assert rules.move_workflow(ready, WorkflowState.idle, None).workflow_state == WorkflowState.idle
