"""The reverberation time to read per band, against known decays: T30 where the noise leaves
45 dB of decay, T20 where it leaves 35, none below (the reasons say why), suspect values
skipped; and after the analysis's own findings (:meth:`RoomParameters.mark_suspect`,
:meth:`RoomParameters.refuse_band`) it is chosen again."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonalyze.acoustics import OCTAVES, filter_bands, mid_band, room_parameters
from sonalyze.acoustics.quality import REVERBERATION_SOURCES, best_reverberation_time

FS = 48_000
BANDS = OCTAVES[2:9]
BAND_T = (1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8)


def banded_room(psnr: float, seed: int = 0, seconds: float = 3.0) -> np.ndarray:
    """One decaying tone per octave at its mid-band frequency (``BAND_T``), and noise in each
    band ``psnr`` dB below the band's unit peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    noise = filter_bands(rng.standard_normal(t.size), FS, BANDS)
    ir = np.zeros(t.size)
    for nominal, t60, row in zip(BANDS, BAND_T, noise, strict=True):
        tone = np.sin(2 * np.pi * mid_band(nominal, 1) * t + rng.uniform(0, 2 * np.pi))
        ir += 10 ** (-3 * t / t60) * tone + row / np.sqrt(np.mean(row**2)) * 10 ** (-psnr / 20)
    return ir


def test_only_iso_3382_2s_reverberation_times_are_offered() -> None:
    assert REVERBERATION_SOURCES == ("T30", "T20")


def test_with_70_db_every_band_reads_t30() -> None:
    result = room_parameters(banded_room(70), FS, BANDS)
    assert result.reverberation_source == ("T30",) * len(BANDS)
    np.testing.assert_array_equal(result.reverberation_time, result["T30"])
    np.testing.assert_allclose(result.reverberation_time, BAND_T, rtol=0.03)


def test_at_a_phones_40_db_t30_is_missing_and_t20_is_read_labelled() -> None:
    """Each band's decay reaches its noise after 35-45 dB: T30 is NaN with its reason, and the
    value to read is T20, within 3 % of the band's reverberation time."""
    result = room_parameters(banded_room(42), FS, BANDS)
    assert np.all(np.isnan(result["T30"]))
    assert all("T30 needs 45 dB" in str(reason) for reason in result.reasons["T30"])
    assert result.reverberation_source == ("T20",) * len(BANDS)
    np.testing.assert_allclose(result.reverberation_time, BAND_T, rtol=0.03)


def test_with_too_little_decay_for_t20_there_is_nothing_to_read_and_the_reasons_say_why() -> None:
    result = room_parameters(banded_room(30), FS, BANDS)
    assert np.all(np.isnan(result.reverberation_time))
    assert result.reverberation_source == (None,) * len(BANDS)
    assert all("T20 needs 35 dB" in str(reason) for reason in result.reasons["T20"])
    assert np.all(np.isfinite(result["EDT"]))  # EDT is there, but not a reverberation time


def test_suspect_values_are_skipped() -> None:
    times, sources = best_reverberation_time(
        {"T30": [1.0, 1.0, 1.0, math.nan], "T20": [0.9, 0.9, 0.9, 0.9]},
        {"T30": [None, "bent", "bent", None], "T20": [None, None, "bent", "bent"]},
    )
    np.testing.assert_array_equal(times, [1.0, 0.9, math.nan, math.nan])
    assert sources == ("T30", "T20", None, None)


def test_marking_t30_suspect_falls_back_to_t20_and_refusing_a_band_leaves_none() -> None:
    result = room_parameters(banded_room(70), FS, BANDS)
    marked = result.mark_suspect(2, "500 Hz band: a late start", keys=("T30",))
    assert marked.reverberation_source[2] == "T20"
    assert marked.reverberation_time[2] == result["T20"][2]
    assert result.reverberation_source[2] == "T30"  # the original is unchanged
    refused = marked.refuse_band(4, "1000 Hz band: the speaker cannot play it")
    assert refused.reverberation_source[4] is None
    assert math.isnan(refused.reverberation_time[4])
    assert refused.reverberation_source[2] == "T20"


def test_the_json_carries_the_value_and_its_source() -> None:
    result = room_parameters(banded_room(42), FS, BANDS[:2])
    reverberation = result.to_json()["reverberation_time"]
    assert reverberation["source"] == ["T20", "T20"]
    assert reverberation["value"] == pytest.approx(list(BAND_T[:2]), rel=0.03)
    nothing = room_parameters(banded_room(30), FS, BANDS[:2]).to_json()["reverberation_time"]
    assert nothing == {"value": [None, None], "source": [None, None]}
