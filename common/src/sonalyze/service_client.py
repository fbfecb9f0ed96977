"""The base of the typed clients of the internal services (lobby, measurement).

A refusal comes back as the :class:`~sonalyze.errors.ServiceError` the service raised, with the
same documented code and message, so that a caller can pass it on to the phone as is; an
unreachable or failing service is ``unavailable``.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from sonalyze.auth import internal_client
from sonalyze.errors import ErrorCode, ServiceError


class ServiceClient:
    """Calls one internal service's API. Use as an async context manager."""

    service = "the service"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = internal_client(base_url, token, timeout_s, transport)

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        **kwargs: Any,
    ) -> bytes:
        if body is not None:
            kwargs["content"] = body.model_dump_json()
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise ServiceError(ErrorCode.unavailable, f"{self.service} is unreachable") from None
        if response.is_error:
            raise self._refusal(response)
        return response.content

    def _refusal(self, response: httpx.Response) -> ServiceError:
        if response.status_code == 401:  # our internal token refused: never the phone's fault
            return ServiceError(ErrorCode.internal, f"{self.service} refused the internal token")
        try:
            body: Any = response.json()
            return ServiceError(ErrorCode(body["code"]), str(body["message"]))
        except (ValueError, KeyError, TypeError):
            pass
        if response.status_code == 422:  # never pass another service's raw error on
            return ServiceError(ErrorCode.bad_request, f"{self.service} refused the request")
        if response.status_code >= 500:
            return ServiceError(ErrorCode.unavailable, f"{self.service} failed; try again")
        return ServiceError(ErrorCode.internal, f"{self.service} answered {response.status_code}")

    async def ready(self) -> None:
        await self._send("GET", "/readyz")
