"""analyse_recording on a simulated room (pyroomacoustics, the truth known): late starts found
and analysed exactly, repetitions aligned, harmonics judged against the noise, the chain's band
limits found, and bad input refused.

The room, the sweep and the conditions are the phone-conditions benchmark's
(``benchmarks/phone_conditions.py``), so that what is tested here is what its table reports.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import signal

from benchmarks import phone_conditions as pc
from sonalyze.acoustics import (
    RecordingAnalysisError,
    analyse_recording,
    band_filter,
    band_leakage,
    exponential_sweep,
)
from sonalyze.acoustics.analysis import BAND_PARAMETERS, RoomParameters

FS = pc.FS


def within_one_jnd(result: RoomParameters, bands: list[int] | None = None) -> None:
    """Every parameter of ``bands`` (all by default) within 1 JND of the room's own."""
    truth = pc.truth()
    for key in BAND_PARAMETERS:
        measured = np.asarray(result[key], dtype=float)
        true = np.asarray(truth[key], dtype=float)
        error = measured / true - 1 if key in pc.RELATIVE else measured - true
        for band in bands if bands is not None else range(len(pc.BANDS)):
            assert abs(error[band]) <= pc.JND[key], (key, pc.BANDS[band], measured, true)


def test_a_recording_that_began_after_the_sweep_is_analysed_from_its_direct_sound() -> None:
    """0.1 s late: the sweep had reached 53 Hz, below every band; nothing is lost, so nothing
    is flagged."""
    analysis = analyse_recording(pc._late_start(), FS, pc.sweep())
    assert "late_start" not in analysis.flags
    assert analysis.start_s == pytest.approx(-0.1 + 3.3 / 343, abs=0.002)  # 3.3 m away
    assert not any(r for key in BAND_PARAMETERS for r in analysis.parameters.reasons[key])
    within_one_jnd(analysis.parameters)


def test_the_bands_a_late_start_missed_are_refused_and_the_rest_exact() -> None:
    """1.9 s late: the sweep had passed 148 Hz, inside the 125 Hz band (88-177 Hz)."""
    heard = pc.with_noise(pc.through_room(pc._sweeps(), lead_in=0.0), pc.PSNR)
    analysis = analyse_recording(heard[round(1.9 * FS) :], FS, pc.sweep())
    reasons = analysis.parameters.reasons
    began = re.compile(r"began 1\.8\d s into the sweep .*, when it had passed 14\d Hz")
    assert all(began.search(reasons[key][0]) for key in BAND_PARAMETERS)
    assert all(math.isnan(analysis.parameters[key][0]) for key in BAND_PARAMETERS)
    within_one_jnd(analysis.parameters, bands=list(range(1, len(pc.BANDS))))


def test_with_repeated_sweeps_a_late_start_drops_the_incomplete_first() -> None:
    heard = pc.with_noise(pc.through_room(pc._sweeps(2), lead_in=0.0), pc.PSNR)
    analysis = analyse_recording(heard[round(1.9 * FS) :], FS, pc.sweep(), repeats=2)
    assert analysis.kept == (1,)
    assert analysis.dropped[0].startswith("repetition 1 of 2: the recording began 1.8")
    assert "late_start" in analysis.flags and "disturbed" not in analysis.flags
    within_one_jnd(analysis.parameters)


def test_a_late_start_and_a_disturbed_later_repetition_are_both_left_out_by_their_number() -> None:
    clean = pc.through_room(pc._sweeps(3), lead_in=0.0)
    slammed = pc.at(clean, pc.door_slam(2 * float(np.max(np.abs(clean)))), 2 * 10.0 + 5.0)
    heard = pc.with_noise(slammed, pc.PSNR)
    analysis = analyse_recording(heard[round(1.9 * FS) :], FS, pc.sweep(), repeats=3)
    assert analysis.kept == (1,)
    assert analysis.dropped[0].startswith("repetition 1 of 3: the recording began")
    assert analysis.dropped[2].startswith("repetition 3 of 3: ")
    assert {"late_start", "disturbed"} <= set(analysis.flags)
    within_one_jnd(analysis.parameters)


def test_with_repeated_sweeps_a_late_start_below_every_band_keeps_them_all() -> None:
    heard = pc.with_noise(pc.through_room(pc._sweeps(2), lead_in=0.0), pc.PSNR)
    analysis = analyse_recording(heard[round(0.1 * FS) :], FS, pc.sweep(), repeats=2)
    assert analysis.kept == (0, 1)
    assert analysis.start_s < 0 and not analysis.flags
    within_one_jnd(analysis.parameters)


def test_sweeps_too_short_for_the_decay_keep_the_last_ones_tail() -> None:
    """Two 1 s sweeps: each response is its own for 0.65 s only (then the next sweep's
    harmonics begin), about 39 dB of this room's decay; the last one's goes on to the recording's
    end, and gives T30."""
    short = pc.sweep(1.0)
    heard = pc.through_room(np.tile(short.signal, 2))
    heard += 1e-4 * np.random.default_rng(1).standard_normal(heard.size)
    analysis = analyse_recording(heard, FS, short, repeats=2)
    assert analysis.kept == (0, 1)
    assert analysis.response.size / FS > 3.0
    within_one_jnd(analysis.parameters)


def test_sweeps_too_short_to_repeat_are_refused() -> None:
    """0.4 s sweeps back to back: the next sweep's harmonics leave each response 0.22 s."""
    short = pc.sweep(0.4)
    with pytest.raises(RecordingAnalysisError, match="play longer sweeps") as caught:
        analyse_recording(pc.through_room(np.tile(short.signal, 3)), FS, short, repeats=3)
    assert caught.value.reason == "too_short"


def test_one_sweep_too_narrow_to_show_drift_is_analysed_as_recorded() -> None:
    """An octave around 1 kHz: too few octaves for the drift's dispersion."""
    narrow = exponential_sweep(600, 1400, 5.0, FS, fade_in=0.05, fade_out=0.02, amplitude=0.5)
    heard = pc.through_room(narrow.signal)
    heard += 1e-5 * np.random.default_rng(2).standard_normal(heard.size)
    analysis = analyse_recording(heard, FS, narrow, bands=[1000])
    assert math.isnan(analysis.clock_drift_ppm)
    assert analysis.parameters["T20"][0] == pytest.approx(pc.truth()["T20"][3], rel=0.05)


def test_a_recording_that_missed_the_whole_sweep_is_refused_with_the_reason() -> None:
    """It began 9.5 s into the sweep, which had reached 12 kHz, above every band."""
    heard = pc.with_noise(pc.through_room(pc._sweeps(), lead_in=0.0, tail=12.0), pc.PSNR)
    with pytest.raises(RecordingAnalysisError, match="no band is left") as caught:
        analyse_recording(heard[round(9.5 * FS) :], FS, pc.sweep())
    assert caught.value.reason == "late_start"


@pytest.mark.parametrize("psnr", [30, 40, 50, 70])
def test_a_linear_speaker_is_never_called_non_linear(psnr: float) -> None:
    heard = pc.with_noise(pc.through_room(pc._sweeps()), psnr, seed=psnr)
    analysis = analyse_recording(heard, FS, pc.sweep())
    assert "non_linear" not in analysis.flags
    assert math.isnan(analysis.harmonics.level_db)
    # The floor says how far down distortion could have been seen: 10 dB less noise, 10 dB
    # lower (within the noise estimate's scatter).
    assert analysis.harmonics.floor_db == pytest.approx(-psnr + 14, abs=1.0)


def test_harmonics_23_db_below_the_response_are_flagged_above_the_noise() -> None:
    played = pc.distorting_speaker(pc._sweeps(), 0.135)
    noiseless = analyse_recording(pc.through_room(played), FS, pc.sweep())
    assert noiseless.harmonics.level_db == pytest.approx(-23.0, abs=0.5)
    noisy = analyse_recording(pc.with_noise(pc.through_room(played), 60), FS, pc.sweep())
    assert noisy.harmonics.level_db == pytest.approx(noiseless.harmonics.level_db, abs=1.0)
    assert "non_linear" in noisy.flags


def test_band_leakage_is_the_share_from_outside_the_band() -> None:
    t = np.arange(FS) / FS
    in_band = np.sin(2 * np.pi * 1000 * t) * np.hanning(t.size)
    octave_up = np.sin(2 * np.pi * 2000 * t) * np.hanning(t.size)
    assert band_leakage(in_band, FS, [1000])[0] < 0.01
    assert band_leakage(octave_up, FS, [1000])[0] > 0.99
    # Both: the 2 kHz tone passes at the filter's gain there, the 1 kHz one whole.
    _, gain = signal.sosfreqz(band_filter(1000, 1, FS), worN=[1000, 2000], fs=FS)
    passed = np.abs(gain) ** 2
    expected = passed[1] / (passed[0] + passed[1])
    assert band_leakage(in_band + octave_up, FS, [1000])[0] == pytest.approx(expected, rel=0.05)


def test_a_band_the_phones_barely_reproduce_is_refused_with_the_reason() -> None:
    condition = next(c for c in pc.CONDITIONS if c.name.startswith("Phone microphone"))
    analysis = analyse_recording(condition.recording(), FS, pc.sweep())
    assert "band_limited" in analysis.flags
    assert analysis.leakage[0] > 0.5
    assert "barely reproduces" in analysis.parameters.reasons["EDT"][0]
    within_one_jnd(analysis.parameters, bands=list(range(2, len(pc.BANDS))))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"recording": np.zeros(0)}, "empty"),
        ({"recording": np.full(20 * FS, np.nan)}, "NaN"),
        ({"recording": np.ones(5 * FS)}, "shorter than 1 sweep"),
        ({"repeats": 0}, "repeats must be a positive integer"),
        ({"repeats": 3}, "shorter than 3 sweep"),
        ({"fs": 0}, "sample rate"),
    ],
)
def test_bad_input_is_refused_with_what_is_wrong(
    arguments: dict[str, object], message: str
) -> None:
    call = {"recording": pc.through_room(pc._sweeps()), "fs": FS, "repeats": 1} | arguments
    with pytest.raises(ValueError, match=message):
        analyse_recording(call.pop("recording"), sweep=pc.sweep(), **call)
