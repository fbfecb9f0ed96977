"""The lobby's rules as pure functions: each takes the lobby as storage last read it and
returns the change to make (with the events that describe it), ``None`` when nothing changes,
or raises :class:`~sonalyze.errors.ServiceError` with the documented code.

Because every function decides from one snapshot and the change names that snapshot's version,
a change decided on stale data is refused by storage and decided again on fresh data.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sonalyze.domain import ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.events import event
from sonalyze.measurement_api import MeasurementStarted
from sonalyze.storage_api import (
    EventIn,
    LobbyChange,
    LobbyRead,
    ParticipantRead,
    ParticipantUpsert,
)

# Digits and capitals without the look-alikes 0/O, 1/I/L: 31 symbols.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# 31**7 is about 2**34.7 codes: at least 30 bits, as the protocol promises.
CODE_LENGTH = 7

W = WorkflowState
TRANSITIONS: dict[WorkflowState, frozenset[WorkflowState]] = {
    W.idle: frozenset({W.ready}),
    W.ready: frozenset({W.idle, W.measuring}),
    W.measuring: frozenset({W.uploading, W.aborted}),
    W.uploading: frozenset({W.analyzing, W.aborted}),
    W.analyzing: frozenset({W.idle, W.aborted}),
    W.aborted: frozenset({W.idle}),
}
# While a measurement runs, who does what is fixed.
RUNNING = frozenset({W.measuring, W.uploading, W.analyzing})


def new_join_code() -> str:
    """A random join code from :data:`CODE_ALPHABET`."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(typed: str) -> str:
    """The join code a user meant: case, spaces and dashes ignored; 0, O, 1, I and L are
    refused by name, since codes never contain them."""
    code = typed.upper().replace(" ", "").replace("-", "")
    wrong = sorted(set(code) - set(CODE_ALPHABET))
    if len(code) != CODE_LENGTH or wrong:
        raise ServiceError(
            ErrorCode.bad_request,
            f"a join code is {CODE_LENGTH} characters of {CODE_ALPHABET}"
            + (f"; {''.join(wrong)} never appear in codes" if wrong else ""),
        )
    return code


def _member(lobby: LobbyRead, device_id: UUID) -> ParticipantRead:
    for participant in lobby.participants:
        if participant.device_id == device_id:
            return participant
    raise ServiceError(ErrorCode.not_found, f"device {device_id} is not in this lobby")


def _require_host(lobby: LobbyRead, device_id: UUID) -> None:
    _member(lobby, device_id)
    if lobby.host_device_id != device_id:
        raise ServiceError(ErrorCode.forbidden, "only the host may do this")


def can_measure(participants: Iterable[ParticipantRead]) -> bool:
    """At least one speaker and one microphone, and every one of them ready and online."""
    active = [p for p in participants if p.role in (Role.speaker, Role.microphone)]
    roles = {p.role for p in active}
    return {Role.speaker, Role.microphone} <= roles and all(
        p.status == ParticipantStatus.ready and p.presence == Presence.online for p in active
    )


def _with_workflow(lobby: LobbyRead, change: LobbyChange, after: list[ParticipantRead]) -> None:
    """Move idle <-> ready as the participants' readiness changes."""
    state = lobby.workflow_state
    target = state
    if state == W.idle and can_measure(after):
        target = W.ready
    elif state == W.ready and not can_measure(after):
        target = W.idle
    if target != state:
        change.workflow_state = target
        change.events.append(event("workflow.changed", state=target.value, previous=state.value))


def _change(lobby: LobbyRead, **fields: Any) -> LobbyChange:
    return LobbyChange(expected_version=lobby.version, **fields)


def _participant_change(lobby: LobbyRead, upsert: ParticipantUpsert, said: EventIn) -> LobbyChange:
    """Change one participant, announce it, and move the workflow if readiness changed."""
    change = _change(lobby, upsert_participants=[upsert], events=[said])
    _with_workflow(lobby, change, _apply_upsert(lobby.participants, upsert))
    return change


def _apply_upsert(
    participants: list[ParticipantRead], upsert: ParticipantUpsert
) -> list[ParticipantRead]:
    updated = []
    for p in participants:
        if p.device_id == upsert.device_id:
            p = p.model_copy(update=upsert.model_dump(exclude_unset=True, exclude={"device_id"}))
        updated.append(p)
    return updated


def join(lobby: LobbyRead, device_id: UUID) -> LobbyChange | None:
    """Add ``device_id`` (no role, not ready); ``None`` if it is a member already."""
    if any(p.device_id == device_id for p in lobby.participants):
        return None
    if lobby.locked:
        raise ServiceError(ErrorCode.forbidden, "the lobby is locked")
    if len(lobby.participants) >= lobby.max_members:
        raise ServiceError(ErrorCode.conflict, f"the lobby is full ({lobby.max_members})")
    # A newcomer has no role yet, so it changes nothing about readiness.
    return _change(
        lobby,
        upsert_participants=[ParticipantUpsert(device_id=device_id)],
        events=[event("participant.joined", device_id=device_id)],
    )


def leave(lobby: LobbyRead, device_id: UUID) -> LobbyChange:
    """Remove ``device_id``; the host passes to the longest-standing member; the last one to
    leave closes the lobby."""
    _member(lobby, device_id)
    rest = [p for p in lobby.participants if p.device_id != device_id]
    if not rest:
        return _change(
            lobby,
            remove_participants=[device_id],
            close=True,
            events=[
                event("participant.left", device_id=device_id),
                event("lobby.closed", reason="empty"),
            ],
        )
    host = lobby.host_device_id
    if host == device_id:
        host = min(rest, key=lambda p: (p.joined_at, str(p.device_id))).device_id
    change = _change(
        lobby,
        remove_participants=[device_id],
        host_device_id=host,
        events=[event("participant.left", device_id=device_id, host_device_id=host)],
    )
    _with_workflow(lobby, change, rest)
    return change


def assign_role(lobby: LobbyRead, by: UUID, device_id: UUID, role: Role) -> LobbyChange | None:
    """The host gives ``device_id`` a role (refused while a measurement runs)."""
    _require_host(lobby, by)
    member = _member(lobby, device_id)
    if lobby.workflow_state in RUNNING:
        raise ServiceError(ErrorCode.conflict, "roles are fixed while a measurement runs")
    if member.role == role:
        return None
    return _participant_change(
        lobby,
        ParticipantUpsert(device_id=device_id, role=role),
        event("role.updated", device_id=device_id, role=role.value, status=member.status.value),
    )


def update_status(
    lobby: LobbyRead, device_id: UUID, status: ParticipantStatus
) -> LobbyChange | None:
    """A member says it is ready or not ready."""
    member = _member(lobby, device_id)
    if member.status == status:
        return None
    role = member.role.value if member.role else None
    return _participant_change(
        lobby,
        ParticipantUpsert(device_id=device_id, status=status),
        event("role.updated", device_id=device_id, role=role, status=status.value),
    )


def update_presence(
    lobby: LobbyRead, device_id: UUID, presence: Presence, connection_id: UUID
) -> LobbyChange | None:
    """A member's gateway connection ``connection_id`` came or went.

    The newest connection to come online wins: an offline report from any other connection
    (an old one, perhaps on another gateway, whose close was seen late) changes nothing.
    """
    member = _member(lobby, device_id)
    if presence == Presence.offline:
        if member.presence == Presence.offline or member.connection_id != connection_id:
            return None
        upsert = ParticipantUpsert(device_id=device_id, presence=presence)
    else:
        if member.presence == Presence.online and member.connection_id == connection_id:
            return None
        upsert = ParticipantUpsert(
            device_id=device_id, presence=presence, connection_id=connection_id
        )
        if member.presence == Presence.online:  # a new connection, still online: no event
            return _change(lobby, upsert_participants=[upsert])
    return _participant_change(
        lobby, upsert, event("participant.presence", device_id=device_id, presence=presence)
    )


def lock(lobby: LobbyRead, by: UUID, locked: bool) -> LobbyChange | None:
    """The host locks the lobby (no one new may join) or unlocks it."""
    _require_host(lobby, by)
    if lobby.locked == locked:
        return None
    return _change(lobby, locked=locked, events=[event("lobby.locked", locked=locked)])


def may_start_measurement(lobby: LobbyRead, by: UUID) -> None:
    """Refuse unless ``by`` is the host and the lobby is ready to measure."""
    _require_host(lobby, by)
    if lobby.workflow_state != W.ready or not can_measure(lobby.participants):
        raise ServiceError(
            ErrorCode.conflict,
            "a measurement needs a speaker and a microphone, all ready and online, and none "
            f"running (the workflow is {lobby.workflow_state})",
        )


def start_measurement(lobby: LobbyRead, by: UUID, started: MeasurementStarted) -> LobbyChange:
    """The host's measurement begins: the workflow moves to measuring, and every member hears
    ``measurement.started`` with the sweep, where to get it and when."""
    may_start_measurement(lobby, by)
    return _change(
        lobby,
        workflow_state=W.measuring,
        events=[
            event("workflow.changed", state=W.measuring.value, previous=W.ready.value),
            event("measurement.started", **started.model_dump()),
        ],
    )


def move_workflow(lobby: LobbyRead, to: WorkflowState, by: UUID | None) -> LobbyChange:
    """Move the workflow along :data:`TRANSITIONS`; anything else is a conflict."""
    if by is not None:
        _require_host(lobby, by)
    state = lobby.workflow_state
    if to not in TRANSITIONS[state]:
        raise ServiceError(ErrorCode.conflict, f"the workflow cannot go from {state} to {to}")
    if to in (W.ready, W.measuring) and not can_measure(lobby.participants):
        raise ServiceError(
            ErrorCode.conflict,
            "a measurement needs a speaker and a microphone, all ready and online",
        )
    change = _change(
        lobby,
        workflow_state=to,
        events=[event("workflow.changed", state=to.value, previous=state.value)],
    )
    if to == W.idle and state in (W.analyzing, W.aborted) and can_measure(lobby.participants):
        # A measurement ended, and everyone is still ready for the next one.
        change.workflow_state = W.ready
        change.events.append(event("workflow.changed", state=W.ready.value, previous=to.value))
    return change
