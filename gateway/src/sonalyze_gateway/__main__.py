"""``python -m sonalyze_gateway``: run the service (settings from SONALYZE_* variables)."""

from __future__ import annotations

from pathlib import Path

from sonalyze.service import serve
from sonalyze_gateway.app import create_app, uvicorn_options
from sonalyze_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    # HTTPS and WSS when a certificate is set (the settings demand its key with it).
    tls: dict[str, Path] = {}
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        tls = {"ssl_certfile": settings.tls_cert_file, "ssl_keyfile": settings.tls_key_file}
    serve("gateway", create_app, settings, **uvicorn_options(settings), **tls)


if __name__ == "__main__":
    main()
