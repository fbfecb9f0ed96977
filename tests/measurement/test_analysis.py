"""A measurement's analysis: a sweep recorded through a known room gives the parameters of the
room's own impulse response, with each band's decay curve and the response it analysed; a
distorting speaker and a noisy room are flagged."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile
from scipy.signal import fftconvolve

from sonalyze.acoustics import filter_bands, room_parameters
from sonalyze.acoustics.recording import BANDS
from sonalyze_measurement.analysis import (
    DECAY_POINTS,
    analyse_response,
    analyse_sweep_recording,
    analyse_upload,
)
from sonalyze_measurement.sweeps import design, render

SPEC = design(duration=3.0, lead_in=0.5, tail=2.0)
FS = SPEC.sample_rate
BAND_T = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def room(seed: int) -> np.ndarray:
    """A direct sound, then per octave a decaying noise with the band's reverberation time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * FS)) / FS
    rows = filter_bands(rng.standard_normal(t.size), FS, BANDS)
    ir = 0.2 * sum(row * 10 ** (-3 * t / t60) for row, t60 in zip(rows, BAND_T, strict=True))
    ir[0] += 1.0
    return np.asarray(ir)


def record(ir: np.ndarray, noise_db: float, seed: int, speaker=lambda x: x) -> np.ndarray:
    """What a microphone records: ``lead_in`` of room noise, then the sweep (through
    ``speaker``, then the room) and ``tail``, with noise ``noise_db`` below the peak."""
    rng = np.random.default_rng(seed + 100)
    played = np.concatenate(
        [
            np.zeros(int(SPEC.lead_in * FS)),
            speaker(render(SPEC).signal),
            np.zeros(int(SPEC.tail * FS)),
        ]
    )
    heard = fftconvolve(played, ir)[: played.size]
    heard /= 2 * np.max(np.abs(heard))
    return heard + rng.standard_normal(heard.size) * 10 ** (noise_db / 20) * 0.5


def values(result: object, key: str) -> np.ndarray:
    """One parameter's values per band, null as NaN."""
    row = getattr(result, key)
    return np.array([math.nan if v is None else v for v in row], dtype=float)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_recorded_sweep_gives_the_parameters_of_the_rooms_own_response(seed: int) -> None:
    ir = room(seed)
    result = analyse_sweep_recording(record(ir, noise_db=-70, seed=seed), SPEC).result
    clean = room_parameters(ir, FS, BANDS)
    for key in ("T20", "T30", "EDT"):
        measured = values(result.parameters, key)
        np.testing.assert_allclose(measured, clean[key], rtol=0.05, err_msg=key)
    for key in ("C50", "C80"):
        measured = values(result.parameters, key)
        np.testing.assert_allclose(measured, clean[key], atol=0.5, err_msg=key)
    assert result.flags == []
    # A linear speaker: no harmonics above the noise, which would have shown them from -40 dB.
    assert result.harmonic_level_db is None
    assert result.harmonic_floor_db is not None and result.harmonic_floor_db < -40
    # No drift: none corrected for (or none estimated with confidence: this room's reverberation
    # begins with its direct sound, which one 3 s sweep cannot tell from drift).
    assert result.clock_drift_ppm is None or abs(result.clock_drift_ppm) <= 1
    assert result.repetitions is not None and result.repetitions.kept == [0]
    response = result.frequency_response
    assert len(response.frequencies) == len(response.level_db) > 100
    assert result.response_blob_id is None, "the service sets it once it stored the response"


def test_each_bands_decay_curve_falls_as_its_reverberation_time_says() -> None:
    """The room's bands decay with T from 1.0 s (125 Hz) to 0.4 s (8 kHz): each curve starts at
    0 dB, falls at -60 / T20 dB/s in T20's range, and ends where the decay meets the noise."""
    result = analyse_sweep_recording(record(room(0), noise_db=-70, seed=0), SPEC).result
    curves = result.decay_curves
    assert curves.step_s == 0.01, "the finest step at which 1.5 s of decay takes 300 points"
    assert len(curves.levels_db) == len(BANDS)
    t20 = values(result.parameters, "T20")
    for band, levels, t60 in zip(BANDS, curves.levels_db, t20, strict=True):
        assert 50 < len(levels) <= DECAY_POINTS, band
        curve = np.array(levels, dtype=float)
        assert curve[0] == 0.0 and np.all(np.isfinite(curve)), band
        seconds = np.arange(curve.size) * curves.step_s
        fit = (curve <= -5) & (curve >= -25)
        slope = np.polyfit(seconds[fit], curve[fit], 1)[0]
        assert -60 / slope == pytest.approx(t60, rel=0.02), band
    assert len(curves.levels_db[0]) > len(curves.levels_db[-1]), "the low band rings longest"


def test_the_response_analysed_comes_back_as_a_float_wav() -> None:
    """The worker's answer: the result, and the response it analysed, its peak half the gap to
    the 2nd harmonic from the start, its parameters those of the result."""
    heard = record(room(0), noise_db=-70, seed=0)
    buffer = io.BytesIO()
    soundfile.write(buffer, heard, FS, format="WAV", subtype="FLOAT")
    spec = SPEC.model_dump(mode="json")
    result, wav = analyse_upload(buffer.getvalue(), {"container": "wav"}, spec)
    response, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
    assert rate == FS and soundfile.info(io.BytesIO(wav)).subtype == "FLOAT"
    half_gap = round(render(SPEC).rate * math.log(2) / 2 * FS)  # to the 2nd harmonic
    assert int(np.argmax(np.abs(response))) == half_gap
    again = room_parameters(response, FS, BANDS)
    np.testing.assert_allclose(values(result.parameters, "T30"), again["T30"], rtol=1e-3)


def test_an_uploaded_impulse_response_is_analysed_as_it_is() -> None:
    ir = room(2)
    analysed = analyse_response(ir, FS)
    assert analysed.response is ir
    assert analysed.result.harmonic_level_db is None
    # No sweep: nothing of one is judged (this random decay's 125 Hz band may be curved).
    assert set(analysed.result.flags) <= {"decay_not_straight"}
    np.testing.assert_allclose(
        values(analysed.result.parameters, "T30"), room_parameters(ir, FS, BANDS)["T30"]
    )


def test_a_distorting_speaker_is_flagged_non_linear() -> None:
    ir = room(0)
    result = analyse_sweep_recording(
        record(ir, -70, 0, speaker=lambda x: x + 0.6 * x**2 + 0.4 * x**3), SPEC
    ).result
    assert "non_linear" in result.flags
    assert result.harmonic_level_db is not None and result.harmonic_level_db > -20
    # The linear response is still measured: Farina's separation keeps the products out.
    np.testing.assert_allclose(
        values(result.parameters, "T30")[2:6],
        room_parameters(ir, FS, BANDS)["T30"][2:6],
        rtol=0.05,
    )


def test_a_noisy_room_is_flagged_and_its_t30_left_out_with_the_reason() -> None:
    result = analyse_sweep_recording(record(room(0), noise_db=-40, seed=0), SPEC).result
    assert "psnr_low_for_t30" in result.flags
    missing = [i for i, v in enumerate(result.parameters.T30) if v is None]
    assert missing
    assert all("T30 needs 45 dB" in str(result.reasons.T30[i]) for i in missing)
