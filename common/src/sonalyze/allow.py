"""The ``Allow`` header of a 405 answer: every method its path takes.

A path whose methods have routes of their own (``GET`` and ``POST`` on a lobby's events) is
refused, on another method, by the first of those routes, which names only its own method.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, path: str, root_path: str = "") -> list[str]:
    """The methods some route of ``app`` takes at ``path`` (mounts, which take any method at
    their prefix, left out)."""
    routes = [route for route in app.router.routes if not isinstance(route, Mount)]

    def takes(method: str) -> bool:
        # A scope of its own for each route: matching may write into it.
        scope = {"type": "http", "path": path, "root_path": root_path, "method": method}
        return any(route.matches(dict(scope))[0] == Match.FULL for route in routes)

    return [method for method in METHODS if takes(method)]


def install_allow_header(app: FastAPI) -> None:
    """Answer 405 with every method of the path in ``Allow``, and otherwise as the app answers
    an :class:`HTTPException`."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        methods = allowed_methods(
            request.app, request.scope["path"], request.scope.get("root_path", "")
        )
        if methods:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
        answer = request.app.exception_handlers.get(HTTPException, http_exception_handler)
        response: Response = await answer(request, exc)
        return response

    app.add_exception_handler(405, handle)
