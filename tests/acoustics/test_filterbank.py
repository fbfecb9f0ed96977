"""Octave and third-octave bands: IEC 61260-1 frequencies, 0 dB at mid-band and -3 dB at the
edges, energy kept across the bank, time-reversed and zero-phase filtering (the two passes' squared
magnitude is the band's, nothing is delayed, an impulse's spread stays within
``zero_phase_spread``), the designs shared safely, bad input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import signal

from sonalyze.acoustics import (
    OCTAVES,
    THIRD_OCTAVES,
    band_edges,
    band_filter,
    filter_bands,
    mid_band,
)
from sonalyze.acoustics.filterbank import zero_phase_spread

FS = 48_000


@pytest.mark.parametrize(
    ("nominal", "fraction", "exact"),
    [(1000, 1, 1000.0), (31.5, 1, 31.623), (125, 1, 125.893), (16000, 1, 15848.9),
     (25, 3, 25.119), (1250, 3, 1258.93), (20000, 3, 19952.6)],
)  # fmt: skip
def test_mid_band_frequencies_are_the_base_10_series(
    nominal: float, fraction: int, exact: float
) -> None:
    assert mid_band(nominal, fraction) == pytest.approx(exact, rel=1e-5)
    low, high = band_edges(nominal, fraction)
    assert high / low == pytest.approx(10 ** (0.3 / fraction))
    assert np.sqrt(low * high) == pytest.approx(exact, rel=1e-5)


@pytest.mark.parametrize(("fraction", "table"), [(1, OCTAVES), (3, THIRD_OCTAVES)])
def test_each_band_passes_its_mid_band_at_0_db_and_its_edges_at_minus_3_db(
    fraction: int, table: tuple[float, ...]
) -> None:
    for nominal in table:
        low, high = band_edges(nominal, fraction)
        fm = mid_band(nominal, fraction)
        _, response = signal.sosfreqz(band_filter(nominal, fraction, FS), [low, fm, high], fs=FS)
        db = 20 * np.log10(np.abs(response))
        assert db == pytest.approx([-3.01, 0.0, -3.01], abs=0.02), nominal


def test_the_bank_keeps_the_energy_of_white_noise() -> None:
    noise = np.random.default_rng(0).standard_normal(10 * FS)
    bands = filter_bands(noise, FS, THIRD_OCTAVES[:-1], 3)
    low, high = band_edges(THIRD_OCTAVES[0], 3)[0], band_edges(THIRD_OCTAVES[-2], 3)[1]
    whole = signal.sosfilt(signal.butter(8, (low, high), "bandpass", fs=FS, output="sos"), noise)
    ratio_db = 10 * np.log10(np.sum(bands**2) / np.sum(whole**2))
    assert 0 < ratio_db < 0.5  # the skirts overlap a little


def test_reversed_filtering_puts_the_filters_ringing_before_the_response() -> None:
    impulse = np.zeros(FS)
    impulse[FS // 2] = 1.0
    forward = filter_bands(impulse, FS, [125])[0]
    backward = filter_bands(impulse, FS, [125], reverse=True)[0]
    assert np.all(forward[: FS // 2] == 0) and np.sum(forward[FS // 2 :] ** 2) > 0
    assert np.all(backward[FS // 2 + 1 :] == 0) and np.sum(backward[: FS // 2] ** 2) > 0


@pytest.mark.parametrize(("fraction", "table"), [(1, OCTAVES), (3, THIRD_OCTAVES)])
def test_the_zero_phase_filters_squared_magnitude_is_the_band(
    fraction: int, table: tuple[float, ...]
) -> None:
    """Forward and backward, the response is ``|H|**2``: 0 dB at mid-band, -3 dB at the edges,
    and steeper than the causal filter an octave off."""
    for nominal in table:
        low, high = band_edges(nominal, fraction)
        fm = mid_band(nominal, fraction)
        sos = band_filter(nominal, fraction, FS, zero_phase=True)
        _, response = signal.sosfreqz(sos, [low, fm, high, 2 * fm], fs=FS)
        db = 40 * np.log10(np.abs(response))
        assert db[:3] == pytest.approx([-3.01, 0.0, -3.01], abs=0.02), nominal
        if 2 * fm < FS / 2:
            _, causal = signal.sosfreqz(band_filter(nominal, fraction, FS), [2 * fm], fs=FS)
            assert db[3] < 20 * np.log10(np.abs(causal[0])), nominal


def test_zero_phase_filtering_delays_nothing_and_spreads_an_impulse_so_far() -> None:
    """An impulse comes out symmetric about itself (its energy's centre on it), with all but
    1e-5 of its energy within ``zero_phase_spread`` of it, in every band up to 8 kHz."""
    n = 2 * FS
    impulse = np.zeros(n)
    impulse[FS] = 1.0
    for fraction, table in ((1, OCTAVES[:9]), (3, THIRD_OCTAVES[:-5])):
        rows = filter_bands(impulse, FS, table, fraction, zero_phase=True)
        for nominal, row in zip(table, rows, strict=True):
            energy = row**2
            np.testing.assert_allclose(
                energy[FS + 1 :], energy[FS - 1 :: -1][: n - FS - 1], atol=1e-15
            )
            centre = float(np.arange(n) @ energy) / energy.sum()
            assert centre == pytest.approx(FS, abs=0.01), nominal
            spread = round(zero_phase_spread(nominal, fraction) * FS)
            inside = energy[FS - spread : FS + spread + 1].sum()
            assert 1 - inside / energy.sum() < 1e-5, (fraction, nominal)


def test_the_causal_filters_delay_the_low_bands_envelope() -> None:
    """What zero phase avoids: a tone burst's energy comes out later by the group delay at
    mid-band, 7 ms at 125 Hz, 1.8 ms at 500 Hz; zero-phase, on time."""
    t = np.arange(FS) / FS
    for nominal, delay in ((125, 0.0072), (500, 0.0018)):
        burst = np.sin(2 * np.pi * mid_band(nominal, 1) * t) * np.exp(-(((t - 0.5) / 0.05) ** 2))
        for zero_phase, expected in ((False, delay), (True, 0.0)):
            energy = filter_bands(burst, FS, [nominal], zero_phase=zero_phase)[0] ** 2
            centre = float(t @ energy) / energy.sum()
            assert centre - 0.5 == pytest.approx(expected, abs=0.0003), (nominal, zero_phase)


def test_the_shared_designs_cannot_be_changed_through_band_filter() -> None:
    sos = band_filter(1000, 1, FS)
    sos[:] = 0
    assert np.any(band_filter(1000, 1, FS))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mid_band(1000, 2), "fraction must be 1"),
        (lambda: mid_band(1001, 1), "not a nominal"),
        (lambda: band_filter(8000, 1, 16_000), "above half the sample rate"),
        (lambda: filter_bands([], FS, [1000]), "is empty"),
        (lambda: filter_bands([0.0, np.nan], FS, [1000]), "NaN"),
        (lambda: filter_bands([0.0, 1.0], FS, [1000], reverse=True, zero_phase=True), "not both"),
        (lambda: band_filter(8000, 1, 16_000, zero_phase=True), "above half the sample rate"),
    ],
    ids=["fraction", "nominal", "above-nyquist", "empty", "nan", "both", "zero-phase-nyquist"],
)
def test_bad_input_is_refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
