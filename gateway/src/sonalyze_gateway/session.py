"""One phone's connection after the handshake: hello, then commands, each answered once.

A session runs the reader (parses commands and answers them in arrival order) and the writer
(its :class:`~sonalyze_gateway.outbox.Outbox`). Whoever closes (the client, a protocol error,
a stalled reader, silence, drain) ends both; the session then stops following its lobby and
reports the phone offline in the lobbies it reported it online, after the presence grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from uuid import UUID

from pydantic import BaseModel
from starlette.websockets import WebSocket

from sonalyze import protocol, upload_frames
from sonalyze.domain import Presence
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.protocol import CloseCode
from sonalyze.storage_api import EventRead
from sonalyze.storage_client import StorageError, StorageNotFound
from sonalyze_gateway import tokens
from sonalyze_gateway.commands import Commands, Follow, Outcome, error_reply, rate_limited
from sonalyze_gateway.feed import Feed
from sonalyze_gateway.forwarding import client_address
from sonalyze_gateway.gateway import Gateway
from sonalyze_gateway.limits import TokenBucket
from sonalyze_gateway.outbox import Outbox, Outgoing
from sonalyze_gateway.ws_metrics import type_label

logger = logging.getLogger(__name__)
FLUSH_S = 1.0  # time the writer gets to send what is queued before the close frame


class Session:
    def __init__(self, gateway: Gateway, websocket: WebSocket) -> None:
        self.gw = gateway
        self.ws = websocket
        self.settings = gateway.settings
        self.metrics = gateway.metrics
        self.outbox = Outbox(
            websocket, self.settings.send_queue_size, self.settings.slow_consumer_s, self.metrics
        )
        self.connection_id = uuid.uuid4()
        self.address = client_address(
            websocket.client.host if websocket.client else None,
            websocket.headers,
            self.settings.trusted_proxies,
        )
        self.device_id: UUID | None = None
        self.feed: Feed | None = None
        self.online_in: set[UUID] = set()  # lobbies this connection reported the phone online
        self.bucket = TokenBucket(self.settings.commands_per_s, self.settings.command_burst)
        self.uploads = TokenBucket(self.settings.uploads_per_s, self.settings.upload_burst)
        self.done = asyncio.Event()
        self._started = time.monotonic()

    # Lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> None:
        self.gw.sessions.add(self)
        self.metrics.connections.inc()
        if self.gw.draining:  # accepted just as the drain began
            self.outbox.close(CloseCode.going_away, "the gateway is restarting; reconnect")
        writer = asyncio.create_task(self.outbox.run())
        reader = asyncio.create_task(self._read())
        closing = self.outbox.closing
        try:
            await asyncio.wait({writer, reader, closing}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                logger.error("session failed", exc_info=reader.exception())
                self.close(CloseCode.internal_error, "the gateway failed; reconnect and resume")
            if self.outbox.close_code is not None and not writer.done():
                await asyncio.wait({writer}, timeout=FLUSH_S)
                if not writer.done():  # stuck behind a phone that stopped reading
                    writer.cancel()
                    await self._close_now(self.outbox.close_code, self.outbox.close_reason)
        finally:
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)
            self._stop_following()
            # A drained phone reconnects elsewhere at once: no offline report then.
            if not self.gw.draining:
                self._report_offline(self.settings.presence_grace_s)
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
                # asyncio.timeout, not wait_for: no task per message (less garbage to collect)
                async with asyncio.timeout(max(timeout, 0.0)):
                    message = await self.ws.receive()
            except TimeoutError:
                if self.device_id is None:
                    self.close(CloseCode.hello_timeout, "no hello within the time allowed")
                else:
                    self.close(CloseCode.idle_timeout, "nothing heard from you; reconnect")
                    self._report_offline(0.0)
                return
            if message["type"] == "websocket.disconnect":
                self.outbox.close(CloseCode.going_away, "")  # ends the writer; nothing is sent
                return
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                limit = self.settings.max_upload_chunk_bytes + upload_frames.HEADER_BYTES
                if len(data) > limit:
                    self.close(
                        CloseCode.message_too_large, f"upload frames are at most {limit} bytes"
                    )
                    return
                await self._upload(data)
                continue
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
            self.outbox.put(error_reply(exc.corr, exc))
            return
        kind, corr = command.envelope.type, command.envelope.id
        assert corr is not None
        self.metrics.received.labels(type_label(kind)).inc()
        if kind == "hello":
            await self._hello(corr, command.payload)
        elif self.device_id is None:
            error = ServiceError(ErrorCode.unauthorized, "say hello first")
            self.outbox.put(error_reply(corr, error))
        elif (wait_s := self.bucket.take()) is not None:
            self.metrics.rate_limited.labels("commands").inc()
            self.outbox.put(error_reply(corr, rate_limited("too many commands", wait_s)))
        else:
            commands = Commands(self.gw, self.device_id, self._following(), self.address)
            outcome, _ = await self.gw.replies.once(
                self.device_id, corr, lambda: commands.run(kind, corr, command.payload)
            )
            await self._apply(outcome)
        self.metrics.handling.labels(type_label(kind)).observe(time.perf_counter() - started)

    async def _upload(self, data: bytes) -> None:
        """One binary upload frame: a chunk of this device's recording, to the measurement
        service; answered with ``upload.ack`` or ``upload.refused``."""
        self.metrics.received.labels("upload").inc()
        frame: upload_frames.UploadFrame | None = None
        try:
            if self.device_id is None:
                raise ServiceError(ErrorCode.unauthorized, "say hello first")
            try:  # read first, so that every refusal names the chunk
                frame = upload_frames.parse(data)
            except upload_frames.FrameError as exc:
                raise ServiceError(ErrorCode.bad_request, str(exc)) from None
            if (wait_s := self.uploads.take()) is not None:
                self.metrics.rate_limited.labels("uploads").inc()
                raise rate_limited("too many upload frames", wait_s)
            if not frame.crc_ok:
                raise ServiceError(
                    ErrorCode.bad_request, f"CRC32 mismatch: send chunk {frame.index} again"
                )
            ack = await self.gw.measurements.put_chunk(
                frame.measurement_id,
                self.device_id,
                frame.index,
                frame.data,
                frame.crc32,
                frame.final,
            )
        except ServiceError as exc:
            refused = protocol.UploadRefused(
                measurement_id=frame.measurement_id if frame else None,
                index=frame.index if frame else None,
                code=exc.code,
                message=exc.message,
            )
            self.outbox.put(
                Outgoing(protocol.reply("upload.refused", None, refused), "upload.refused")
            )
            return
        self.outbox.put(Outgoing(protocol.reply("upload.ack", None, ack), "upload.ack"))

    async def _apply(self, outcome: Outcome) -> None:
        """Queue the reply, and follow (or stop following) the lobby it names."""
        follow = outcome.follow
        if follow is not None and follow.after_seq is not None:
            # Before the ack, so that an acked entry has its presence recorded.
            await self._report_online(follow.lobby_id)
        self.outbox.put(outcome.reply)
        if follow is not None:
            self._follow(follow)

    async def _hello(self, corr: str, hello: BaseModel) -> None:
        assert isinstance(hello, protocol.Hello)
        if self.device_id is not None:
            error = ServiceError(ErrorCode.bad_request, "hello was said already")
            self.outbox.put(error_reply(corr, error))
            return
        try:
            device_id = await self._identify(hello.token)
        except ServiceError as exc:
            self.outbox.put(error_reply(corr, exc))
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

    # Lobby and presence ------------------------------------------------------------------------

    def _following(self) -> UUID | None:
        return self.feed.lobby_id if self.feed is not None else None

    def _follow(self, follow: Follow) -> None:
        """Follow a lobby from a seq (after its snapshot), or stop following it."""
        if follow.after_seq is None:  # the phone left the lobby
            if self._following() == follow.lobby_id:
                self._stop_following()
            self.online_in.discard(follow.lobby_id)
            return
        previous = self._following()
        if previous is not None and previous != follow.lobby_id:
            # Still a member there, but no longer connected to it.
            self._report_offline(0.0, only=previous)
        if follow.snapshot is not None:
            self.outbox.put(Outgoing(follow.snapshot, "lobby.state"))
        self._stop_following()
        self.feed = Feed(follow.lobby_id, follow.after_seq, self.outbox, self._fetch)
        self.gw.hub.subscribe(self.feed)
        self.feed.start()

    def _stop_following(self) -> None:
        feed, self.feed = self.feed, None
        if feed is not None:
            feed.stop()
            self.gw.hub.unsubscribe(feed)

    async def _report_online(self, lobby_id: UUID) -> None:
        """Tell the lobby this connection is the phone's (its presence follows it now)."""
        assert self.device_id is not None
        self.online_in.add(lobby_id)
        try:
            await self.gw.lobbies.update_presence(
                lobby_id, self.device_id, Presence.online, self.connection_id
            )
        except ServiceError as exc:
            logger.info("presence of %s in %s not reported: %s", self.device_id, lobby_id, exc)

    def _report_offline(self, after_s: float, only: UUID | None = None) -> None:
        """Report the phone offline, after ``after_s``, where this connection said online."""
        if self.device_id is None:
            return
        lobbies = {only} & self.online_in if only is not None else set(self.online_in)
        for lobby_id in lobbies:
            self.online_in.discard(lobby_id)
            self.gw.report_presence(
                lobby_id, self.device_id, Presence.offline, self.connection_id, after_s
            )

    async def _fetch(self, lobby_id: UUID, after_seq: int, limit: int) -> list[EventRead]:
        return await self.gw.storage.lobby_events(lobby_id, after_seq, limit)
