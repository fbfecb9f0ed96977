"""A Python client of protocol v1: one device's connection to the gateway, as a phone makes it.

:class:`Client` says hello (keeping its token, so a reconnect is the same device), sends
commands and returns their typed acks (:data:`sonalyze.protocol.ACKS`), or raises
:class:`CommandFailed` with the gateway's code; it waits and retries a command the gateway
rate-limited, or refused as ``unavailable`` (a service behind it restarting) when running it
twice is harmless (not ``lobby.create``, ``measurement.start`` or ``measurement.abort``; a
``simulation.request`` only with its ``client_request_id``), until the command's time is up.
It keeps each lobby's events in ``seq`` order, each once, and pings as ``welcome`` asks. When the
connection drops, or the gateway closes it with a code that says reconnect (4000-4099), it
reconnects with backoff, says hello with its token, resumes the lobby it follows from the last
``seq`` it has, and sends again the commands still unanswered under their ids, before it takes new
ones. A gateway process answers a repeated id with its first reply and never runs it twice; a
command whose reply was lost when its gateway died may run again on another (a second lobby, say).
It gives up (:class:`ConnectionLost`) when the gateway no longer knows the device or closes with a
code that says not to reconnect. It also measures the clock offset to the gateway (``time.sync``),
uploads a recording in chunks with resume and resend (:meth:`Client.upload`), and downloads what a
member may (WAV files).

Used by ``sonalyze demo``, the tests and the benchmarks::

    async with Client("ws://127.0.0.1:8000/v1/ws") as phone:
        joined = await phone.command("lobby.create")
        state = await phone.wait_for("lobby.state")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Origin, Subprotocol

from sonalyze import protocol, upload_frames
from sonalyze.domain import RecordingState
from sonalyze.errors import ErrorCode
from sonalyze.measurement_api import ChunkAck

logger = logging.getLogger(__name__)
RETRIES = 5  # passes of an upload in a row that acknowledge nothing
# Between the attempts of a command or an upload pass refused unavailable, the last repeated.
UNAVAILABLE_WAIT_S = (0.5, 1.0, 2.0, 4.0)
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # between reconnect attempts, the last repeated


class CommandFailed(Exception):
    """The gateway refused a command (or an upload): its error code and message."""

    def __init__(self, kind: str, error: protocol.Error) -> None:
        super().__init__(f"{kind}: {error.code.value}: {error.message}")
        self.code = error.code
        self.message = error.message
        self.retry_after_ms = error.retry_after_ms


class ConnectionLost(Exception):
    """The gateway closed the connection with a code that says not to reconnect (4100-4199),
    or the client was closed."""


@dataclass(frozen=True)
class Event:
    """A lobby event: its type, lobby, ``seq``, server time (ms) and payload as sent."""

    type: str
    lobby: UUID
    seq: int
    ts: float
    payload: dict[str, Any]

    def model(self) -> BaseModel:
        """The payload as its model (:data:`sonalyze.protocol.SERVER_EVENTS`)."""
        return protocol.SERVER_EVENTS[self.type].model_validate(self.payload)


class Client:
    """One device's connection to the gateway at ``url`` (``ws://`` or ``wss://``); see the
    module's notes. ``token``: be the device an earlier welcome named."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        origin: str | None = None,
        reconnect: bool = True,
    ) -> None:
        self.url = url
        self.token = token
        self.device_id: UUID | None = None
        self.events: list[Event] = []
        self._origin = origin
        self._reconnect = reconnect
        # Ids unique to this client: the gateway answers a repeated (device, id) with its
        # first reply, and another client may be this device too (token=).
        self._prefix = uuid4().hex[:10]
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._last_seq: dict[UUID, int] = {}  # the lobbies followed, and the last seq of each
        self._uploads: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._taken: set[tuple[str, UUID, int]] = set()  # the events wait_for returned
        self._closed: BaseException | None = None
        self._online = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnects = 0

    # Connection ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def connect(self) -> protocol.Welcome:
        """Open the connection and say hello; the welcome."""
        welcome = await self._open()
        self._tasks = [
            asyncio.create_task(self._run()),
            asyncio.create_task(self._heartbeat(welcome.heartbeat_s)),
        ]
        return welcome

    async def close(self) -> None:
        """Close the connection; unanswered commands fail with :class:`ConnectionLost`."""
        self._closed = ConnectionLost("the client was closed")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._ws is not None:
            await self._ws.close()
        self._fail_pending(self._closed)
        self._arrived.set()  # a wait_for elsewhere raises now

    async def _open(self, *, online: bool = True) -> protocol.Welcome:
        ws = await connect(
            self.url,
            subprotocols=[Subprotocol(protocol.SUBPROTOCOL)],
            compression=None,
            origin=Origin(self._origin) if self._origin else None,
            max_size=2**22,
            ping_interval=None,  # the gateway sends none either; we ping as welcome asks
        )
        hello = {"v": 1, "type": "hello", "id": "hello", "payload": {"token": self.token}}
        await ws.send(json.dumps(hello))
        reply = json.loads(await ws.recv())
        if reply["type"] != "welcome":
            await ws.close()
            raise CommandFailed("hello", protocol.Error.model_validate(reply["payload"]))
        welcome = protocol.Welcome.model_validate(reply["payload"])
        self.device_id, self.token = welcome.device_id, welcome.token
        self._ws = ws
        if online:
            self._online.set()
        return welcome

    async def _run(self) -> None:
        """Read until closed; reconnect, resume and resend when the gateway says to."""
        while True:
            assert self._ws is not None
            try:
                async for text in self._ws:
                    self._receive(json.loads(text))
            except ConnectionClosed:
                pass
            self._online.clear()
            code = self._ws.close_code
            if not self._reconnect or (code is not None and not _reconnectable(code)):
                self._lost(f"closed by the gateway: {code} {self._ws.close_reason}")
                return
            if not await self._reopen():
                return

    def _lost(self, why: str) -> None:
        """Give up: every waiting command and wait_for raises :class:`ConnectionLost`."""
        self._closed = ConnectionLost(why)
        self._fail_pending(self._closed)
        self._arrived.set()

    async def _reopen(self) -> bool:
        """Reconnect, resume the lobby followed and send the unanswered commands again, and
        only then take new ones; False if the gateway refuses this device (a bad token)."""
        for attempt in itertools.count():
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            try:
                await self._open(online=False)
                await self._resume()
                assert self._ws is not None
                for text, _ in list(self._pending.values()):
                    await self._ws.send(text)
            except CommandFailed as refused:
                if refused.code == ErrorCode.unauthorized:
                    self._lost(f"the gateway no longer knows this device: {refused.message}")
                    return False
                logger.info("reconnecting to %s: %s", self.url, refused)  # unavailable, ...
            except (OSError, WebSocketException, TimeoutError) as exc:
                logger.info("reconnecting to %s: %s", self.url, exc)
            else:
                self.reconnects += 1
                self._online.set()
                return True
            if self._ws is not None:
                await self._ws.close()
        raise AssertionError("unreachable")

    async def _resume(self) -> None:
        """Resume the lobby followed from the last seq seen, reading until its ack (what comes
        first is handled as usual); :class:`CommandFailed` if refused."""
        assert self._ws is not None
        for lobby, seq in list(self._last_seq.items()):
            command_id = f"{self._prefix}-resume-{next(self._ids)}"
            resume = {"lobby_id": str(lobby), "after_seq": seq}
            await self._ws.send(self._frame("resume", resume, command_id))
            async with asyncio.timeout(60):
                while True:
                    message = json.loads(await self._ws.recv())
                    if message.get("corr") == command_id:
                        break
                    self._receive(message)
            if message["type"] == "error":
                error = protocol.Error.model_validate(message["payload"])
                if error.code not in (ErrorCode.not_found, ErrorCode.forbidden):
                    raise CommandFailed("resume", error)  # worth another try
                del self._last_seq[lobby]  # closed, or no longer a member: nothing to follow

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("ack", "error", "welcome"):
            entry = self._pending.pop(message.get("corr") or "", None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(message)
        elif kind in protocol.UPLOAD_REPLIES:
            self._uploads.put_nowait(message)
        elif message.get("lobby") is not None:
            self._event(message)
        self._arrived.set()

    def _event(self, message: dict[str, Any]) -> None:
        lobby, seq = UUID(message["lobby"]), int(message["seq"])
        if message["type"] == "lobby.state":  # a connection follows one lobby at a time
            self._last_seq = {lobby: max(seq, self._last_seq.get(lobby, 0))}
        elif seq <= self._last_seq.get(lobby, 0):
            return  # had it already (a resume sends from what it was told, which may overlap)
        else:
            self._last_seq[lobby] = seq
        self.events.append(
            Event(message["type"], lobby, seq, float(message["ts"]), message["payload"])
        )

    def _fail_pending(self, error: BaseException) -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def _heartbeat(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(CommandFailed, ConnectionLost, TimeoutError):
                await self.command("ping", within_s=every_s)

    # Commands and events ------------------------------------------------------------------------

    def _frame(self, kind: str, payload: dict[str, Any], command_id: str) -> str:
        return json.dumps({"v": 1, "type": kind, "id": command_id, "payload": payload})

    async def command(
        self,
        kind: str,
        payload: dict[str, Any] | BaseModel | None = None,
        *,
        within_s: float = 60.0,
    ) -> Any:
        """Send ``kind`` and return its ack's payload as its model; :class:`CommandFailed` if
        refused. A command refused ``rate_limited`` is sent again after the wait the gateway
        names, one refused ``unavailable`` (a service behind the gateway down or restarting)
        after a growing wait (:data:`UNAVAILABLE_WAIT_S`) if running it twice is harmless,
        until ``within_s`` has passed."""
        if isinstance(payload, BaseModel):
            payload = payload.model_dump(mode="json", exclude_none=True)
        body = payload or {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        for attempt in itertools.count():
            reply = await self._send(kind, body, max(deadline - loop.time(), 0.0))
            if reply["type"] == "ack":
                ack = protocol.ACKS[kind].model_validate(reply["payload"])
                self._entered(kind, ack)
                return ack
            error = protocol.Error.model_validate(reply["payload"])
            wait = _retry_wait(error, attempt, _repeatable(kind, body))
            if wait is None or loop.time() + wait >= deadline:
                raise CommandFailed(kind, error)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _entered(self, kind: str, ack: BaseModel) -> None:
        """Follow the lobby an ack says this connection entered (its events go on from the
        seq the ack names), or none after leaving: a reconnect resumes from there."""
        if kind == "lobby.leave":
            self._last_seq.clear()
        elif isinstance(ack, protocol.Joined | protocol.Resumed):
            seq = ack.seq if isinstance(ack, protocol.Joined) else ack.after_seq
            self._last_seq = {ack.lobby_id: max(seq, self._last_seq.get(ack.lobby_id, 0))}

    async def _send(self, kind: str, body: dict[str, Any], within_s: float) -> dict[str, Any]:
        if self._closed is not None:
            raise self._closed
        command_id = f"{self._prefix}-{next(self._ids)}"
        text = self._frame(kind, body, command_id)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (text, future)
        if self._online.is_set() and self._ws is not None:
            with contextlib.suppress(ConnectionClosed):  # sent again once reconnected
                await self._ws.send(text)
        try:
            return await asyncio.wait_for(future, within_s)
        finally:
            self._pending.pop(command_id, None)

    async def wait_for(
        self, kind: str, *, within_s: float = 60.0, where: Callable[[Event], bool] | None = None
    ) -> Event:
        """The next event of type ``kind`` (matching ``where``) that no earlier call returned:
        one received already, or the next to arrive."""
        async with asyncio.timeout(within_s):
            while True:
                for event in self.events:
                    key = (event.type, event.lobby, event.seq)
                    if event.type == kind and key not in self._taken and (where or _any)(event):
                        self._taken.add(key)
                        return event
                if self._closed is not None:
                    raise self._closed
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_seq(self, seq: int, *, within_s: float = 60.0) -> None:
        """Wait until the lobby followed has sent every event up to ``seq``."""
        async with asyncio.timeout(within_s):
            while max(self._last_seq.values(), default=0) < seq:
                if self._closed is not None:
                    raise self._closed
                self._arrived.clear()
                await self._arrived.wait()

    # Time, uploads and downloads ----------------------------------------------------------------

    async def clock_offset_ms(self, samples: int = 8) -> tuple[float, float]:
        """The gateway's clock minus this one (ms) and the round trip it was measured over,
        from the fastest of ``samples`` exchanges (NTP's estimate: the error is at most half
        the round trip)."""
        best: tuple[float, float] | None = None
        for _ in range(samples):
            t0 = protocol.now_ms()
            reply: protocol.TimeSyncReply = await self.command("time.sync", {"t0": t0})
            t3 = protocol.now_ms()
            round_trip = (t3 - t0) - (reply.t2 - reply.t1)
            offset = ((reply.t1 - t0) + (reply.t2 - t3)) / 2
            if best is None or round_trip < best[1]:
                best = (offset, round_trip)
        assert best is not None
        return best

    async def upload(
        self,
        measurement_id: UUID,
        data: bytes,
        *,
        container: str = "wav",
        chunk_bytes: int = 256 * 1024,
        within_s: float = 300.0,
    ) -> ChunkAck:
        """Upload a recording in chunks; the ack that ended it (``state`` complete or invalid:
        the one that left no chunk missing, whichever chunk that was).

        It goes in passes: ``measurement.upload``, then every chunk not yet acknowledged, then
        a reply to each. Refused chunks go again in the next pass when the refusal says to (a
        CRC mismatch; too many frames at once, after a second's wait; ``unavailable``, after a
        growing wait, until ``within_s``), and after a reconnect every chunk not yet
        acknowledged does. A refusal that says not to (the measurement ended, say), or more
        than ``RETRIES`` passes in a row that acknowledge nothing, raise
        :class:`CommandFailed`."""
        parts = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
        acked: dict[int, ChunkAck] = {}
        idle_passes = waits = 0
        while not self._uploads.empty():  # replies to an upload before this one
            self._uploads.get_nowait()
        async with asyncio.timeout(within_s):
            while len(acked) < len(parts):
                before, reconnects = len(acked), self.reconnects
                await self.command(
                    "measurement.upload",
                    {"measurement_id": str(measurement_id), "format": {"container": container}},
                )
                sent = [i for i in range(len(parts)) if i not in acked]
                for index in sent:
                    final = index == len(parts) - 1
                    frame = upload_frames.encode(measurement_id, index, parts[index], final=final)
                    await self._send_frame(frame)
                refusal = await self._collect(measurement_id, len(sent), acked, reconnects)
                if len(acked) > before:
                    idle_passes = waits = 0
                    continue
                if refusal is not None and refusal.code == ErrorCode.unavailable:
                    # Not the upload's fault: passes go on, further apart, until within_s.
                    await asyncio.sleep(_retry_wait(refusal, waits, True) or 0)
                    waits += 1
                    continue
                idle_passes += 1
                if refusal is None and idle_passes > RETRIES:
                    refusal = protocol.Error(
                        code=ErrorCode.unavailable,
                        message=f"no chunk acknowledged in {RETRIES} passes",
                    )
                if refusal is not None and (refusal.code not in _RESEND or idle_passes > RETRIES):
                    raise CommandFailed("upload", refusal)
                if refusal is not None and refusal.code == ErrorCode.rate_limited:
                    await asyncio.sleep(1.0)
        ending = [ack for ack in acked.values() if ack.state != RecordingState.uploading]
        return ending[0] if ending else acked[len(parts) - 1]

    async def _collect(
        self, measurement_id: UUID, count: int, acked: dict[int, ChunkAck], reconnects: int
    ) -> protocol.Error | None:
        """The replies to ``count`` frames (until a reconnect): acks into ``acked``; the last
        refusal, if any."""
        refusal = None
        for _ in range(count):
            reply = await self._next_upload_reply(reconnects)
            if reply is None:
                break  # reconnected: the next pass asks where the upload stands
            if reply["type"] == "upload.ack":
                ack = ChunkAck.model_validate(reply["payload"])
                if ack.measurement_id == measurement_id:
                    acked[ack.index] = ack
                continue
            refused = protocol.UploadRefused.model_validate(reply["payload"])
            if refused.measurement_id not in (None, measurement_id):
                continue
            refusal = protocol.Error(code=refused.code, message=refused.message)
        return refusal

    async def _send_frame(self, frame: bytes) -> None:
        """Send ``frame`` once connected; :class:`ConnectionLost` if the client gave up."""
        while not self._online.is_set():
            if self._closed is not None:
                raise self._closed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._online.wait()
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):  # a reconnect sends what is unacknowledged
            await self._ws.send(frame)

    async def _next_upload_reply(self, reconnects: int) -> dict[str, Any] | None:
        """The next upload reply, or None once the client reconnected."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    return await self._uploads.get()
            if self.reconnects != reconnects:
                return None
            if self._closed is not None:
                raise self._closed

    async def download(self, path: str) -> bytes:
        """GET ``path`` (as the gateway gives it, ``/v1/...``) with this device's token."""
        base = self.url.replace("ws", "http", 1).removesuffix("/v1/ws")
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            response = await http.get(path, headers=headers)
        if response.is_error:
            body = response.json()
            raise CommandFailed(path, protocol.Error(code=body["code"], message=body["message"]))
        return response.content


# Upload refusals after which the chunk is sent again.
_RESEND = frozenset({ErrorCode.bad_request, ErrorCode.rate_limited})
# Commands that would do their work again if run twice (a second lobby, a second measurement).
_ONCE_ONLY = frozenset({"lobby.create", "measurement.start", "measurement.abort"})
# Closes that are no one's fault: going away, dropped (no close frame), server error, restart.
_DROPPED = frozenset({1001, 1006, 1011, 1012, 1013})


def _reconnectable(code: int) -> bool:
    """Reconnect after a documented 4000-4099 and after a connection that dropped."""
    return protocol.should_reconnect(code) or code in _DROPPED


def _repeatable(kind: str, body: dict[str, Any]) -> bool:
    """Whether running the command twice does what running it once does: an ``unavailable``
    may come after the service behind the gateway took it (a timed-out call, say)."""
    if kind == "simulation.request":
        return bool(body.get("client_request_id"))  # the same id answers with the same job
    return kind not in _ONCE_ONLY and not (kind == "analysis.request" and "kind" in body)


def _retry_wait(error: protocol.Error, attempt: int, repeatable: bool) -> float | None:
    """How long to wait before sending a refused command again; None: not again."""
    if error.code == ErrorCode.rate_limited:
        return (error.retry_after_ms or 1000) / 1000
    if error.code == ErrorCode.unavailable and repeatable:
        return UNAVAILABLE_WAIT_S[min(attempt, len(UNAVAILABLE_WAIT_S) - 1)]
    return None


def _any(_: Event) -> bool:
    return True
