"""``python -m sonalyze_gateway``: run the service (settings from SONALYZE_* variables)."""

from __future__ import annotations

from sonalyze.service import serve
from sonalyze_gateway.app import create_app, uvicorn_options
from sonalyze_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    serve("gateway", create_app, settings, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
