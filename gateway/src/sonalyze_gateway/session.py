"""One phone's connection after the handshake: hello, then commands, each answered once.

A session runs three tasks: the reader (parses and runs commands in arrival order), the
writer (its :class:`~sonalyze_gateway.outbox.Outbox`) and a wait for either to end. Whoever
closes (the client, a protocol error, a full queue, silence, drain) the session ends the
others, leaves its lobby feed and reports the phone offline after the presence grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from starlette.websockets import WebSocket

from sonalyze import protocol
from sonalyze.domain import Presence
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.protocol import CloseCode
from sonalyze.storage_api import EventRead, LobbyChanged, LobbyRead
from sonalyze.storage_client import StorageError, StorageNotFound, StorageUnavailable
from sonalyze_gateway import tokens
from sonalyze_gateway.feed import Feed
from sonalyze_gateway.gateway import Gateway
from sonalyze_gateway.limits import TokenBucket
from sonalyze_gateway.outbox import Outbox, Outgoing
from sonalyze_gateway.ws_metrics import type_label

logger = logging.getLogger(__name__)
FLUSH_S = 1.0  # time the writer gets to send what is queued before the close frame
Then = Callable[[], None]


@dataclass
class Answer:
    """A command's ack payload, and what to do once the ack is queued."""

    payload: BaseModel
    then: Then | None = None


class Session:
    def __init__(self, gateway: Gateway, websocket: WebSocket) -> None:
        self.gw = gateway
        self.ws = websocket
        self.settings = gateway.settings
        self.metrics = gateway.metrics
        self.outbox = Outbox(websocket, self.settings.send_queue_size, self.metrics)
        self.connection_id = uuid.uuid4()
        self.address = websocket.client.host if websocket.client else "unknown"
        self.device_id: UUID | None = None
        self.feed: Feed | None = None
        self.bucket = TokenBucket(self.settings.commands_per_s, self.settings.command_burst)
        self.done = asyncio.Event()
        self._started = time.monotonic()

    # Lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        self.gw.sessions.add(self)
        self.metrics.connections.inc()
        writer = asyncio.create_task(self.outbox.run())
        reader = asyncio.create_task(self._read())
        closing = asyncio.create_task(self.outbox.closing.wait())
        try:
            await asyncio.wait({writer, reader, closing}, return_when=asyncio.FIRST_COMPLETED)
            if self.outbox.close_code is not None and not writer.done():
                await asyncio.wait({writer}, timeout=FLUSH_S)
                if not writer.done():  # stuck behind a phone that stopped reading
                    writer.cancel()
                    await self._close_now(self.outbox.close_code, self.outbox.close_reason)
        finally:
            for task in (writer, reader, closing):
                task.cancel()
            await asyncio.gather(writer, reader, closing, return_exceptions=True)
            # A drained phone reconnects elsewhere at once: no offline report then.
            self._leave_feed(None if self.gw.draining else self.settings.presence_grace_s)
            self.gw.sessions.discard(self)
            self.metrics.connections.dec()
            self.done.set()

    async def _close_now(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), FLUSH_S)

    def close(self, code: CloseCode, reason: str) -> None:
        self.metrics.rejected.labels(code.name).inc()
        self.outbox.close(code, reason)

    async def _read(self) -> None:
        while self.outbox.close_code is None:
            if self.device_id is None:
                timeout = self.settings.hello_timeout_s - (time.monotonic() - self._started)
            else:
                timeout = self.settings.idle_timeout_s
            try:
                message = await asyncio.wait_for(self.ws.receive(), max(timeout, 0.0))
            except TimeoutError:
                if self.device_id is None:
                    self.close(CloseCode.hello_timeout, "no hello within the time allowed")
                else:
                    self.close(CloseCode.idle_timeout, "nothing heard from you; reconnect")
                    self._leave_feed(offline_after=0.0)
                return
            if message["type"] == "websocket.disconnect":
                self.outbox.close(CloseCode.going_away, "")  # ends the writer; nothing is sent
                return
            text = message.get("text")
            if text is None:
                self.close(CloseCode.protocol_error, "binary frames are not part of protocol v1")
                return
            if len(text) > self.settings.max_message_bytes or (
                len(text) * 4 > self.settings.max_message_bytes
                and len(text.encode()) > self.settings.max_message_bytes
            ):
                self.close(
                    CloseCode.message_too_large,
                    f"messages are at most {self.settings.max_message_bytes} bytes",
                )
                return
            await self._handle(text)

    # Commands ----------------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        started = time.perf_counter()
        try:
            command = protocol.parse_command(text)
        except protocol.Refused as exc:
            self.metrics.received.labels("unknown").inc()
            self._reply_error(exc.corr, exc)
            return
        kind, corr = command.envelope.type, command.envelope.id
        self.metrics.received.labels(type_label(kind)).inc()
        if kind == "hello":
            await self._hello(corr, command.payload)
        elif self.device_id is None:
            self._reply_error(corr, ServiceError(ErrorCode.unauthorized, "say hello first"))
        elif (wait_s := self.bucket.take()) is not None:
            self.metrics.rate_limited.labels("commands").inc()
            self._reply_error(corr, _rate_limited("too many commands", wait_s))
        else:
            await self._run_once(kind, corr, command.payload)
        self.metrics.handling.labels(type_label(kind)).observe(time.perf_counter() - started)

    async def _run_once(self, kind: str, corr: str | None, payload: BaseModel) -> None:
        assert self.device_id is not None and corr is not None
        then: list[Then] = []

        async def run() -> Outgoing:
            try:
                answer = await self._execute(kind, payload)
            except ServiceError as exc:
                return Outgoing(protocol.reply("error", corr, _error_payload(exc)), "error")
            if answer.then is not None:
                then.append(answer.then)
            return Outgoing(protocol.reply("ack", corr, answer.payload), "ack")

        reply, _ = await self.gw.replies.once(self.device_id, corr, run)
        self.outbox.put(reply)
        for step in then:
            step()

    async def _execute(self, kind: str, payload: BaseModel) -> Answer:
        handler = self._handlers().get(kind)
        assert handler is not None, kind
        try:
            return await handler(payload)
        except ServiceError:
            raise
        except StorageNotFound as exc:
            raise ServiceError(ErrorCode.not_found, str(exc)) from None
        except StorageUnavailable:
            raise ServiceError(ErrorCode.unavailable, "storage is unavailable; retry") from None
        except Exception:
            logger.exception("%s failed", kind)
            raise ServiceError(ErrorCode.internal, f"{kind} failed unexpectedly") from None

    def _handlers(self) -> dict[str, Callable[[Any], Awaitable[Answer]]]:
        return {
            "lobby.create": self._lobby_create,
            "lobby.join": self._lobby_join,
            "lobby.leave": self._lobby_leave,
            "role.assign": self._role_assign,
            "role.update": self._role_update,
            "resume": self._resume,
            "ping": self._ping,
            "time.sync": self._time_sync,
        }

    async def _hello(self, corr: str | None, hello: BaseModel) -> None:
        assert isinstance(hello, protocol.Hello)
        if self.device_id is not None:
            self._reply_error(corr, ServiceError(ErrorCode.bad_request, "hello was said already"))
            return
        try:
            device_id = await self._identify(hello.token)
        except ServiceError as exc:
            self._reply_error(corr, exc)
            if exc.code == ErrorCode.unauthorized:
                self.close(CloseCode.unauthorized, "say hello without a token for a new identity")
            return
        self.device_id = device_id
        token = tokens.issue(device_id, self.gw.secrets, self.settings.device_token_ttl_s)
        welcome = protocol.Welcome(
            device_id=device_id,
            token=token,
            heartbeat_s=self.settings.heartbeat_s,
            idle_timeout_s=self.settings.idle_timeout_s,
        )
        self.outbox.put(Outgoing(protocol.reply("welcome", corr, welcome), "welcome"))

    async def _identify(self, token: str | None) -> UUID:
        try:
            if token is None:
                return (await self.gw.storage.create_device()).id
            device_id = tokens.verify(token, self.gw.secrets)
            await self.gw.storage.get_device(device_id)
            return device_id
        except StorageNotFound:
            raise ServiceError(ErrorCode.unauthorized, "this device is not known here") from None
        except StorageError:
            raise ServiceError(ErrorCode.unavailable, "storage is unavailable; retry") from None

    async def _lobby_create(self, body: protocol.LobbyCreate) -> Answer:
        changed = await self.gw.lobbies.create(self._device(), body.name)
        return await self._enter(changed.lobby)

    async def _lobby_join(self, body: protocol.LobbyJoin) -> Answer:
        keys = (f"device:{self.device_id}", f"address:{self.address}")
        waits = [w for key in keys if (w := self.gw.join_failures.blocked(key)) is not None]
        if waits:
            self.metrics.rate_limited.labels("join").inc()
            raise _rate_limited("too many wrong join codes", max(waits))
        try:
            changed = await self.gw.lobbies.join(self._device(), body.code)
        except ServiceError as exc:
            if exc.code in (ErrorCode.not_found, ErrorCode.bad_request):
                for key in keys:
                    self.gw.join_failures.fail(key)
            raise
        return await self._enter(changed.lobby)

    async def _lobby_leave(self, _: BaseModel) -> Answer:
        lobby_id = self._lobby()
        changed = await self.gw.lobbies.leave(lobby_id, self._device())
        self._leave_feed()
        return Answer(protocol.Changed(seq=_last_seq(changed)))

    async def _role_assign(self, body: protocol.RoleAssign) -> Answer:
        changed = await self.gw.lobbies.assign_role(
            self._lobby(), self._device(), body.device_id, body.role
        )
        return Answer(protocol.Changed(seq=_last_seq(changed)))

    async def _role_update(self, body: protocol.RoleUpdate) -> Answer:
        changed = await self.gw.lobbies.update_status(self._lobby(), self._device(), body.status)
        return Answer(protocol.Changed(seq=_last_seq(changed)))

    async def _resume(self, body: protocol.Resume) -> Answer:
        outcome = "ok"
        try:
            lobby = await self.gw.storage.get_lobby(body.lobby_id)
            if lobby.closed_at is not None:
                outcome = "closed"
                raise ServiceError(ErrorCode.not_found, f"lobby {lobby.id} is closed")
            if all(p.device_id != self.device_id for p in lobby.participants):
                outcome = "not_member"
                raise ServiceError(ErrorCode.forbidden, "this device is not in that lobby")
            if body.after_seq > lobby.last_seq:
                outcome = "ahead"
                raise ServiceError(
                    ErrorCode.bad_request,
                    f"after_seq {body.after_seq} is beyond the lobby's last seq {lobby.last_seq}",
                )
        except StorageNotFound:
            outcome = "not_found"
            raise ServiceError(ErrorCode.not_found, f"lobby {body.lobby_id} not found") from None
        finally:
            self.metrics.resumes.labels(outcome).inc()
        await self._report_online(lobby.id)
        return Answer(
            protocol.Resumed(lobby_id=lobby.id, after_seq=body.after_seq),
            lambda: self._follow(lobby.id, body.after_seq),
        )

    async def _ping(self, _: BaseModel) -> Answer:
        return Answer(protocol.Empty())

    async def _time_sync(self, body: protocol.TimeSync) -> Answer:
        received = protocol.now_ms()
        return Answer(protocol.TimeSyncReply(t0=body.t0, t1=received, t2=protocol.now_ms()))

    # Lobby membership --------------------------------------------------------------------------

    async def _enter(self, lobby: LobbyRead) -> Answer:
        """Ack with the lobby, then its snapshot, then its events after the snapshot."""
        await self._report_online(lobby.id)

        def then() -> None:
            state = protocol.LobbyState.of(lobby)
            frame = protocol.event_frame(
                "lobby.state", lobby.id, lobby.last_seq, protocol.now_ms(), state
            )
            self.outbox.put(Outgoing(frame, "lobby.state"))
            self._follow(lobby.id, lobby.last_seq)

        joined = protocol.Joined(lobby_id=lobby.id, code=lobby.code, seq=lobby.last_seq)
        return Answer(joined, then)

    async def _report_online(self, lobby_id: UUID) -> None:
        """Tell the lobby this connection is the phone's (its presence follows it now)."""
        try:
            await self.gw.lobbies.update_presence(
                lobby_id, self._device(), Presence.online, self.connection_id
            )
        except ServiceError as exc:
            logger.info("presence of %s in %s not reported: %s", self.device_id, lobby_id, exc)

    def _follow(self, lobby_id: UUID, after_seq: int) -> None:
        """Deliver the lobby's events after ``after_seq``."""
        self._leave_feed()
        self.feed = Feed(lobby_id, after_seq, self.outbox, self._fetch)
        self.gw.hub.subscribe(self.feed)
        self.feed.start()

    def _leave_feed(self, offline_after: float | None = None) -> None:
        """Stop following the lobby; with ``offline_after``, report the phone gone then."""
        feed, self.feed = self.feed, None
        if feed is None:
            return
        feed.stop()
        self.gw.hub.unsubscribe(feed)
        if offline_after is not None and self.device_id is not None:
            self.gw.report_presence(
                feed.lobby_id, self.device_id, Presence.offline, self.connection_id, offline_after
            )

    async def _fetch(self, lobby_id: UUID, after_seq: int, limit: int) -> list[EventRead]:
        return await self.gw.storage.lobby_events(lobby_id, after_seq, limit)

    # Helpers -----------------------------------------------------------------------------------

    def _device(self) -> UUID:
        assert self.device_id is not None
        return self.device_id

    def _lobby(self) -> UUID:
        if self.feed is None:
            raise ServiceError(ErrorCode.bad_request, "join, create or resume a lobby first")
        return self.feed.lobby_id

    def _reply_error(self, corr: str | None, exc: ServiceError) -> None:
        self.outbox.put(Outgoing(protocol.reply("error", corr, _error_payload(exc)), "error"))


def _error_payload(exc: ServiceError) -> protocol.Error:
    return protocol.Error(code=exc.code, message=exc.message, retry_after_ms=exc.retry_after_ms)


def _rate_limited(message: str, wait_s: float) -> ServiceError:
    retry_ms = max(1, int(wait_s * 1000 + 0.999))
    return ServiceError(ErrorCode.rate_limited, f"{message}; retry in {wait_s:.1f} s", retry_ms)


def _last_seq(changed: LobbyChanged) -> int | None:
    return changed.events[-1].seq if changed.events else None
