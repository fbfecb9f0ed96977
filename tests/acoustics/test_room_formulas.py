"""Sabine and Eyring: hand-computed shoebox values, Eyring below Sabine and meeting it as the
absorption vanishes, air absorption, per-band shapes, fully absorbing rooms, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sonalyze.acoustics.room_formulas import eyring, mean_absorption, sabine

# A 10 x 8 x 3 m shoebox: floor and ceiling, two long walls, two short walls.
VOLUME = 10 * 8 * 3  # 240 m^3
AREAS = [10 * 8, 10 * 8, 10 * 3, 10 * 3, 8 * 3, 8 * 3]  # 268 m^2 in all
C = 343.0


def test_sabine_of_a_shoebox_is_the_formula_written_out() -> None:
    # A = 268 * 0.1 = 26.8 m^2; 24 ln(10) * 240 / (343 * 26.8) = 13262.89 / 9192.4.
    expected = 24 * math.log(10) * 240 / (343 * 26.8)
    t = sabine(VOLUME, AREAS, [0.1] * 6)
    assert t.shape == (1,)
    assert t[0] == pytest.approx(expected, rel=1e-12)
    assert t[0] == pytest.approx(1.44281, abs=1e-5)  # by hand


def test_eyring_of_a_shoebox_is_the_formula_written_out() -> None:
    # -268 ln(0.9) = 28.2366 m^2; 13262.89 / (343 * 28.2366) = 13262.89 / 9685.17.
    expected = 24 * math.log(10) * 240 / (343 * -268 * math.log(1 - 0.1))
    t = eyring(VOLUME, AREAS, [0.1] * 6)
    assert t[0] == pytest.approx(expected, rel=1e-12)
    assert t[0] == pytest.approx(1.36940, abs=1e-5)  # by hand


def test_the_constant_is_0_161_seconds_per_metre_at_343_m_per_s() -> None:
    # V / A = 1 m: Sabine's familiar T = 0.161 V / A.
    assert sabine(1.0, [1.0], [1.0])[0] == pytest.approx(0.16111, abs=1e-5)


def test_mixed_surfaces_add_their_absorption_areas() -> None:
    # Absorbent ceiling (0.7), carpeted floor (0.3), plastered walls (0.05):
    # A = 80 * 0.7 + 80 * 0.3 + 108 * 0.05 = 56 + 24 + 5.4 = 85.4 m^2.
    absorption = [0.3, 0.7, 0.05, 0.05, 0.05, 0.05]
    assert sabine(VOLUME, AREAS, absorption)[0] == pytest.approx(
        24 * math.log(10) * 240 / (343 * 85.4), rel=1e-12
    )
    assert mean_absorption(AREAS, absorption)[0] == pytest.approx(85.4 / 268, rel=1e-12)
    assert eyring(VOLUME, AREAS, absorption)[0] == pytest.approx(
        24 * math.log(10) * 240 / (343 * -268 * math.log(1 - 85.4 / 268)), rel=1e-12
    )


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3, 0.6, 0.9, 0.99])
def test_eyring_is_shorter_than_sabine(alpha: float) -> None:
    assert eyring(VOLUME, AREAS, [alpha] * 6)[0] < sabine(VOLUME, AREAS, [alpha] * 6)[0]


@pytest.mark.parametrize("alpha", [1e-2, 1e-3, 1e-4])
def test_eyring_meets_sabine_as_the_absorption_vanishes(alpha: float) -> None:
    # -ln(1 - a) = a + a^2 / 2 + ...: Eyring is shorter by a relative a / 2 to first order.
    t_sabine = sabine(VOLUME, AREAS, [alpha] * 6)[0]
    t_eyring = eyring(VOLUME, AREAS, [alpha] * 6)[0]
    assert (t_sabine - t_eyring) / t_sabine == pytest.approx(alpha / 2, rel=alpha)


def test_a_fully_absorbing_band_has_no_reverberation_by_eyring() -> None:
    absorption = np.array([[1.0, 0.1]] * 6)
    assert eyring(VOLUME, AREAS, absorption)[0] == 0.0
    # Sabine's formula keeps a finite time, 0.161 V / S: what Eyring's corrected.
    assert sabine(VOLUME, AREAS, absorption)[0] == pytest.approx(
        24 * math.log(10) * 240 / (343 * 268), rel=1e-12
    )
    # Air absorption too does not bring it back; the other band is unaffected.
    t = eyring(VOLUME, AREAS, absorption, air_attenuation=0.01)
    assert t[0] == 0.0
    assert t[1] == pytest.approx(24 * math.log(10) * 240 / (343 * (-268 * math.log(0.9) + 9.6)))


def test_air_absorption_adds_4_m_v_and_shortens_the_time() -> None:
    # m = 0.01 /m: 4 m V = 9.6 m^2 on top of A = 26.8 m^2; 13262.89 / (343 * 36.4).
    t = sabine(VOLUME, AREAS, [0.1] * 6, air_attenuation=0.01)[0]
    assert t == pytest.approx(24 * math.log(10) * 240 / (343 * (26.8 + 9.6)), rel=1e-12)
    assert t == pytest.approx(1.06229, abs=1e-5)  # by hand
    assert t < sabine(VOLUME, AREAS, [0.1] * 6)[0]
    assert (
        eyring(VOLUME, AREAS, [0.1] * 6, air_attenuation=0.01)[0]
        < eyring(VOLUME, AREAS, [0.1] * 6)[0]
    )


def test_air_only_is_enough_to_absorb() -> None:
    # No surface absorbs: T = 24 ln(10) / (4 m c), whatever the room.
    expected = 24 * math.log(10) / (4 * 0.002 * C)
    assert sabine(VOLUME, AREAS, [0.0] * 6, air_attenuation=0.002)[0] == pytest.approx(expected)
    assert eyring(VOLUME, AREAS, [0.0] * 6, air_attenuation=0.002)[0] == pytest.approx(expected)


@pytest.mark.parametrize("formula", [sabine, eyring])
def test_bands_are_columns_and_each_is_its_own_room(formula: Any) -> None:
    bands = np.array([0.02, 0.05, 0.1, 0.2, 0.4, 0.6])
    absorption = np.tile(bands, (6, 1))
    air = np.array([0.0, 0.0, 0.001, 0.002, 0.005, 0.02])
    t = formula(VOLUME, AREAS, absorption, air_attenuation=air)
    assert t.shape == (6,)
    assert t.dtype == np.float64
    for band in range(6):
        one = formula(VOLUME, AREAS, [bands[band]] * 6, air_attenuation=air[band])
        assert t[band] == pytest.approx(one[0], rel=1e-12)
    assert np.all(np.diff(t) < 0)  # more absorption, shorter time
    # One number of air attenuation applies to every band.
    assert formula(VOLUME, AREAS, absorption, air_attenuation=0.002) == pytest.approx(
        formula(VOLUME, AREAS, absorption, air_attenuation=np.full(6, 0.002))
    )
    assert mean_absorption(AREAS, absorption) == pytest.approx(bands)


def test_the_speed_of_sound_scales_the_time() -> None:
    t_343 = sabine(VOLUME, AREAS, [0.1] * 6)[0]
    assert sabine(VOLUME, AREAS, [0.1] * 6, speed_of_sound=686.0)[0] == pytest.approx(t_343 / 2)


def test_the_inputs_are_left_as_they_were() -> None:
    areas = np.array(AREAS, dtype=np.float64)
    absorption = np.array([[1.0, 0.1]] * 6)
    air = np.array([0.01, 0.0])
    copies = areas.copy(), absorption.copy(), air.copy()
    eyring(VOLUME, areas, absorption, air_attenuation=air)
    sabine(VOLUME, areas, absorption, air_attenuation=air)
    for array, copy in zip((areas, absorption, air), copies, strict=True):
        np.testing.assert_array_equal(array, copy)


GOOD: dict[str, Any] = {"volume": VOLUME, "areas": AREAS, "absorption": [0.1] * 6}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"volume": 0.0}, r"volume must be positive \(m\^3\), not 0.0"),
        ({"volume": -240.0}, "volume must be positive"),
        ({"volume": math.nan}, "volume must be finite"),
        ({"volume": math.inf}, "volume must be finite"),
        ({"volume": [240.0]}, r"volume must be a single number, not shape \(1,\)"),
        ({"volume": "big"}, "volume must be a number"),
        ({"areas": []}, "areas is empty"),
        ({"areas": [80, 80, 30, 30, 24, -24]}, "areas must all be positive"),
        ({"areas": [80, 80, 30, 30, 24, 0]}, "areas must all be positive"),
        ({"areas": [80, 80, 30, 30, 24, math.nan]}, "areas contains NaN or infinite"),
        ({"areas": [[80, 80, 30], [30, 24, 24]]}, "areas must be a 1-D sequence"),
        ({"absorption": [0.1] * 5}, "absorption has 5 rows but there are 6 areas"),
        ({"absorption": [[0.1, 0.2]] * 7}, "absorption has 7 rows but there are 6 areas"),
        ({"absorption": np.zeros((6, 0))}, "absorption is empty"),
        ({"absorption": np.full((6, 2, 2), 0.1)}, r"absorption must have shape \(n_surfaces,\)"),
        ({"absorption": [0.1] * 5 + [1.2]}, r"absorption coefficients must lie in \[0, 1\]"),
        ({"absorption": [0.1] * 5 + [-0.1]}, r"absorption coefficients must lie in \[0, 1\]"),
        ({"absorption": [0.1] * 5 + [math.inf]}, "absorption contains NaN or infinite"),
        ({"air_attenuation": -0.01}, r"air_attenuation must not be negative \(1/m\)"),
        ({"air_attenuation": math.nan}, "air_attenuation contains NaN or infinite"),
        ({"air_attenuation": [0.01, 0.02]}, r"one per band \(1\), not shape \(2,\)"),
        ({"speed_of_sound": 0.0}, r"speed_of_sound must be positive \(m/s\)"),
        ({"speed_of_sound": -343.0}, "speed_of_sound must be positive"),
        ({"speed_of_sound": math.inf}, "speed_of_sound must be finite"),
        ({"absorption": [0.0] * 6}, "absorbs nothing in band 0.*infinite"),
    ],
)
@pytest.mark.parametrize("formula", [sabine, eyring])
def test_bad_input_is_refused(formula: Any, change: dict[str, Any], message: str) -> None:
    arguments = {**GOOD, **change}
    keywords = {
        k: arguments.pop(k) for k in ("air_attenuation", "speed_of_sound") if k in arguments
    }
    with pytest.raises(ValueError, match=message):
        formula(arguments["volume"], arguments["areas"], arguments["absorption"], **keywords)


def test_a_band_with_nothing_absorbing_is_named() -> None:
    absorption = np.array([[0.1, 0.0, 0.2]] * 6)
    for formula in (sabine, eyring):
        with pytest.raises(ValueError, match="absorbs nothing in band 1"):
            formula(VOLUME, AREAS, absorption)
        # Air attenuation in that band is enough.
        assert np.all(np.isfinite(formula(VOLUME, AREAS, absorption, air_attenuation=0.001)))


@pytest.mark.parametrize(
    ("areas", "absorption", "message"),
    [
        ([], [], "areas is empty"),
        ([1.0, 2.0], [0.1], "absorption has 1 rows but there are 2 areas"),
        ([1.0, 2.0], [0.1, 1.5], r"must lie in \[0, 1\]"),
    ],
)
def test_mean_absorption_refuses_bad_input(
    areas: list[float], absorption: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        mean_absorption(areas, absorption)
