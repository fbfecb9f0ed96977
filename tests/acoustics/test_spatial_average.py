"""The spatial average over positions: mean, spread (ddof 1) and count per band; suspect
values left out and counted; the reverberation time to read averaged too."""

from __future__ import annotations

import numpy as np
import pytest

from sonalyze.acoustics import OCTAVES, room_parameters, spatial_average

BANDS = 7
FS = 48_000


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


def with_doubts(t30: list[float | None], doubts: list[str | None]) -> dict[str, object]:
    data = position(t30)
    data["suspect"] = {key: [None] * BANDS for key in ("EDT", "T20", "C50", "C80", "D50", "Ts")}
    data["suspect"]["T30"] = doubts  # type: ignore[index]
    return data


def test_suspect_values_are_left_out_and_counted() -> None:
    clean = [1.0] * BANDS
    bent = [None, "500 Hz band: not straight", None, None, None, None, None]
    missing = [None] * BANDS
    positions = [
        with_doubts(clean, [None] * BANDS),
        with_doubts([1.2, 3.9, 1.0, 1.0, 1.0, 1.0, 1.0], bent),
        with_doubts(missing, [None] * BANDS),
        position([1.1] * BANDS),  # stored before suspect existed: every value counts
    ]
    average = spatial_average(positions, BANDS)["T30"]
    assert average["count"] == [3, 2, 3, 3, 3, 3, 3]
    assert average["left_out"] == [0, 1, 0, 0, 0, 0, 0]
    assert average["mean"][1] == pytest.approx(1.05)  # 3.9 left out
    assert average["mean"][0] == pytest.approx(1.1)
    assert spatial_average(positions, BANDS)["EDT"]["left_out"] == [0] * BANDS


def test_a_suspect_entry_beside_a_missing_value_leaves_nothing_out() -> None:
    average = spatial_average([with_doubts([None] * BANDS, ["doubt"] * BANDS)], BANDS)["T30"]
    assert average["left_out"] == [0] * BANDS
    assert average["count"] == [0] * BANDS


def test_the_reverberation_time_to_read_is_averaged_when_the_positions_carry_it() -> None:
    positions = [position([1.0] * BANDS), position([None] * BANDS), position([1.2] * BANDS)]
    for data, values in zip(
        positions, ([1.0] * BANDS, [0.9] + [None] * 6, [1.2] * BANDS), strict=True
    ):
        sources = ["T30" if v is not None else None for v in values]
        data["reverberation_time"] = {"value": values, "source": sources}
    average = spatial_average(positions, BANDS)["reverberation_time"]
    assert average["count"] == [3] + [2] * 6
    assert average["mean"][0] == pytest.approx((1.0 + 0.9 + 1.2) / 3)
    assert average["mean"][1] == pytest.approx(1.1)
    assert average["left_out"] == [0] * BANDS
    assert "reverberation_time" not in spatial_average([position([1.0] * BANDS)], BANDS)


def test_the_average_of_room_parameters_json_leaves_out_a_disturbed_band() -> None:
    """End to end: two positions' results, one with its 500 Hz band marked suspect."""
    rng = np.random.default_rng(0)
    n = np.arange(FS)
    ir = rng.choice([-1.0, 1.0], n.size) * 10 ** (-3 * n / (0.5 * FS))
    ir += rng.standard_normal(n.size) * 10 ** (-70 / 20)
    result = room_parameters(ir, FS, OCTAVES[2:9])
    marked = result.mark_suspect(2, "500 Hz band: a door slam")
    average = spatial_average([result.to_json(), marked.to_json()], BANDS)
    present = {key: np.isfinite(result[key]) for key in ("T30", "C50")}
    present["reverberation_time"] = np.isfinite(result.reverberation_time)
    assert present["T30"][2]
    for key, there in present.items():
        expected = 2 * there.astype(int)
        expected[2] = 1
        assert average[key]["count"] == expected.tolist(), key
    assert average["C50"]["left_out"] == [0, 0, 1, 0, 0, 0, 0]
    assert average["T30"]["mean"][2] == pytest.approx(result["T30"][2])
