"""``python -m sonalyze_simulation``: run the service (settings from SONALYZE_* variables)."""

from __future__ import annotations

from sonalyze.service import serve
from sonalyze_simulation.app import create_app
from sonalyze_simulation.settings import SimulationSettings


def main() -> None:
    serve("simulation", create_app, SimulationSettings())


if __name__ == "__main__":
    main()
