"""``python -m sonalyze_lobby``: run the service (settings from SONALYZE_* variables)."""

from __future__ import annotations

from sonalyze.service import serve
from sonalyze_lobby.app import create_app
from sonalyze_lobby.settings import LobbySettings


def main() -> None:
    serve("lobby", create_app, LobbySettings())


if __name__ == "__main__":
    main()
