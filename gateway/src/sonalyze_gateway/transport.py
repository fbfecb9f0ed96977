"""uvicorn's WebSocket protocol with the gateway's socket limits.

Each connection gets a small socket send buffer and write high-water mark, so a phone that
stops reading is noticed after kilobytes rather than megabytes of kernel buffers. A close frame
never waits for such a phone: it is queued behind what the socket holds, so the phone reads
its close code once it reads again. A connection whose peer has not read it all
``ABORT_AFTER_S`` after the app finished is aborted instead of holding its buffers until TCP
gives up.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

ABORT_AFTER_S = 30.0


def protocol_class(send_buffer_bytes: int) -> type[asyncio.Protocol]:
    """A WebSocket protocol class for ``uvicorn.Config(ws=...)``."""

    class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
            transport.set_write_buffer_limits(high=send_buffer_bytes)

        async def send(self, message: Any) -> None:
            if message["type"] == "websocket.close" and self.handshake_complete:
                # Past the high-water mark the transport still buffers; uvicorn would wait
                # for the peer to read first, which a stalled peer never does.
                self.writable.set()
            await super().send(message)

        async def run_asgi(self) -> None:
            await super().run_asgi()
            if self.transport.get_write_buffer_size():
                self.loop.call_later(ABORT_AFTER_S, self.transport.abort)

    return GatewayWebSocketProtocol
