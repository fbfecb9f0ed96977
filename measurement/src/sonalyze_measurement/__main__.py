"""``python -m sonalyze_measurement``: run the service (settings from SONALYZE_* variables)."""

from __future__ import annotations

from sonalyze.service import serve
from sonalyze_measurement.app import create_app
from sonalyze_measurement.settings import MeasurementSettings


def main() -> None:
    serve("measurement", create_app, MeasurementSettings())


if __name__ == "__main__":
    main()
