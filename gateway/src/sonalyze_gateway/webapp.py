"""The phones' web app, served by the gateway from its own origin (so the page and ``/v1/ws``
need no CORS and no allow-list), and what its screens ask for over HTTP.

- ``GET /`` and ``GET /j/{code}`` (the join link a QR code carries): the app's page;
- ``GET /app/...``: its modules, style sheet and the chart library (revalidated on every load,
  so an upgraded gateway never mixes old and new modules);
- ``GET /app/qr.svg?text=...``: a QR code of a join link, drawn here so that the phone loads
  no QR library;
- ``GET /v1/materials``: the material names a simulation may use, for the simulation form.

The page carries a Content-Security-Policy that lets it load only its own files and talk only
to its own origin, and a Permissions-Policy that gives the microphone to it alone.
"""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path
from typing import Annotated

import segno
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from sonalyze.errors import ErrorBody, refusals
from sonalyze_gateway.gateway import Gateway

WEB_DIR = Path(str(resources.files("sonalyze_gateway") / "web"))
MAX_QR_TEXT = 300
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Permissions-Policy": "microphone=(self), camera=()",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter()


def _page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/", include_in_schema=False)
async def home() -> FileResponse:
    """The app: create a lobby or join one."""
    return _page()


@router.get("/j/{code}", include_in_schema=False)
async def join_link(code: str) -> FileResponse:
    """The app with the join code filled in (the app reads it from the path)."""
    return _page()


@router.get(
    "/app/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **refusals()},
    tags=["app"],
)
async def qr_code(text: Annotated[str, Query(min_length=1, max_length=MAX_QR_TEXT)]) -> Response:
    """A QR code of ``text`` (a join link) as SVG, dark on light, with its quiet zone."""
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, svgns=True)
    return Response(
        buffer.getvalue(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.get(
    "/v1/materials",
    response_model=list[str],
    responses={503: {"model": ErrorBody, "description": "The simulation service is unavailable."}},
    tags=["simulations"],
)
async def materials(request: Request) -> list[str]:
    """The material names a simulation request may use (pyroomacoustics' database)."""
    gateway: Gateway = request.app.state.gateway
    return await gateway.simulations.materials()


class AppFiles(StaticFiles):
    """The app's files, revalidated on every load (ETag), with the page's safety headers."""

    def file_response(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    """Serve the app's page, its files and its HTTP endpoints."""
    app.include_router(router)
    app.mount("/app", AppFiles(directory=WEB_DIR, html=False), name="app")
