"""Close code 4003: a phone whose missing events storage cannot serve is told to reconnect.

The gateway reaches storage through a forwarding proxy in this test (real HTTP both ways, the
event stream included) that can refuse one thing: a lobby's catch-up read. A phone resumes a
lobby from its start while those reads fail; once the gateway has tried enough, it closes the
phone with 4003 (reconnect with backoff and resume), and the phone, resuming again once
storage serves, gets every event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from sonalyze.protocol import CloseCode
from sonalyze_gateway.settings import GatewaySettings
from tests.conftest import serving
from tests.gateway.conftest import gateway_serving
from tests.gateway.phone import Phone

HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "host"}


class Proxy:
    """Forwards every request to ``upstream``; while ``refusing``, a lobby's events are 503."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refusing = False
        self.refused = 0

    @contextmanager
    def serving(self) -> Iterator[str]:
        clients: list[httpx.AsyncClient] = []

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with httpx.AsyncClient(base_url=self.upstream, timeout=None) as client:
                clients.append(client)
                yield

        app = FastAPI(lifespan=lifespan)

        @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        async def forward(path: str, request: Request) -> Response:
            if self.refusing and request.method == "GET" and path.endswith("/events"):
                self.refused += 1
                return JSONResponse({"code": "unavailable", "message": "refused"}, 503)
            client = clients[0]
            sent = client.build_request(
                request.method,
                f"/{path}",
                params=request.query_params,
                headers=[(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP],
                content=await request.body(),
            )
            answer = await client.send(sent, stream=True)
            return StreamingResponse(
                answer.aiter_raw(),
                status_code=answer.status_code,
                headers={k: v for k, v in answer.headers.items() if k not in HOP_BY_HOP},
                background=BackgroundTask(answer.aclose),
            )

        with serving(app) as url:
            yield url


def test_a_phone_whose_catch_up_fails_gets_4003_and_everything_on_its_next_resume(
    gateway_settings: GatewaySettings, storage_url: str
) -> None:
    proxy = Proxy(storage_url)

    async def scenario(url: str) -> None:
        host = await Phone.connect(url)
        joined = await host.ok("lobby.create", {})
        last = 0
        for status in ("ready", "not_ready") * 3:
            last = (await host.ok("role.update", {"status": status}))["seq"]
        proxy.refusing = True
        again = await Phone.connect(url, token=host.token)
        await again.ok("resume", {"lobby_id": joined["lobby_id"], "after_seq": 0})
        code, reason = await again.closed(within_s=60)
        assert code == CloseCode.internal_error, (code, reason)
        assert proxy.refused > 1, "tried more than once"
        proxy.refusing = False
        third = await Phone.connect(url, token=host.token)
        await third.ok("resume", {"lobby_id": joined["lobby_id"], "after_seq": 0})
        await third.wait_for_seq(last)
        assert [seq for seq, _ in third.log()] == list(range(1, last + 1))
        for phone in (host, third):
            await phone.close()

    with proxy.serving() as proxied:
        settings = gateway_settings.model_copy(update={"storage_url": proxied})
        with gateway_serving(settings) as url:
            asyncio.run(scenario(url))
