"""The spatial average over positions: mean, spread (ddof 1) and count per band."""

from __future__ import annotations

import pytest

from sonalyze.acoustics import spatial_average

BANDS = 7


def position(t30: list[float | None]) -> dict[str, object]:
    nothing = [None] * BANDS
    parameters = {key: list(nothing) for key in ("EDT", "T20", "C50", "C80", "D50", "Ts")}
    return {"parameters": {**parameters, "T30": t30}}


def test_the_spatial_average_is_mean_spread_and_count_per_band() -> None:
    values = [
        [1.0, 0.8, None, 0.5, 0.4, 0.3, 0.2],
        [1.2, 0.8, None, None, 0.4, 0.3, 0.2],
        [1.1, 0.8, 0.7, None, 0.4, 0.3, 0.2],
    ]
    average = spatial_average([position(row) for row in values], BANDS)["T30"]
    assert average["count"] == [3, 3, 1, 1, 3, 3, 3]
    assert average["mean"][0] == pytest.approx(1.1)
    assert average["std"][0] == pytest.approx(0.1)  # ddof 1
    assert average["mean"][2] == pytest.approx(0.7)
    assert average["std"][2] is None  # one value has no spread
    assert average["std"][1] == pytest.approx(0.0)
    assert spatial_average([position([None] * BANDS)], BANDS)["T30"]["mean"] == [None] * BANDS


def test_no_positions_average_to_nothing() -> None:
    average = spatial_average([], BANDS)["T30"]
    assert average["count"] == [0] * BANDS
    assert all(v is None for v in average["mean"])
    assert average["std"] == [None] * BANDS
