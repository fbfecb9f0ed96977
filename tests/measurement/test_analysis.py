"""A measurement's analysis: a sweep recorded through a known room gives the parameters of the
room's own impulse response, a distorting speaker and a noisy room are flagged, and the spatial
average is the mean, spread and count over the microphones."""

from __future__ import annotations

import numpy as np
import pytest

from sonalyze.acoustics import filter_bands, room_parameters
from sonalyze_measurement.analysis import BANDS, analyse_recording
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
    heard = np.convolve(played, ir)[: played.size]
    heard /= 2 * np.max(np.abs(heard))
    return heard + rng.standard_normal(heard.size) * 10 ** (noise_db / 20) * 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_a_recorded_sweep_gives_the_parameters_of_the_rooms_own_response(seed: int) -> None:
    ir = room(seed)
    result = analyse_recording(record(ir, noise_db=-70, seed=seed), SPEC)
    clean = room_parameters(ir, FS, BANDS)
    for key in ("T20", "T30", "EDT"):
        measured = np.array(result["parameters"][key], dtype=float)
        np.testing.assert_allclose(measured, clean[key], rtol=0.05, err_msg=key)
    for key in ("C50", "C80"):
        measured = np.array(result["parameters"][key], dtype=float)
        np.testing.assert_allclose(measured, clean[key], atol=0.5, err_msg=key)
    assert result["flags"] == []
    assert result["harmonic_level_db"] < -40
    response = result["frequency_response"]
    assert len(response["frequencies"]) == len(response["level_db"]) > 100


def test_a_distorting_speaker_is_flagged_non_linear() -> None:
    ir = room(0)
    result = analyse_recording(
        record(ir, -70, 0, speaker=lambda x: x + 0.6 * x**2 + 0.4 * x**3), SPEC
    )
    assert "non_linear" in result["flags"]
    assert result["harmonic_level_db"] > -20
    # The linear response is still measured: Farina's separation keeps the products out.
    np.testing.assert_allclose(
        np.array(result["parameters"]["T30"], dtype=float)[2:6],
        room_parameters(ir, FS, BANDS)["T30"][2:6],
        rtol=0.05,
    )


def test_a_noisy_room_is_flagged_and_its_t30_left_out_with_the_reason() -> None:
    result = analyse_recording(record(room(0), noise_db=-40, seed=0), SPEC)
    assert "psnr_low_for_t30" in result["flags"]
    missing = [i for i, v in enumerate(result["parameters"]["T30"]) if v is None]
    assert missing
    assert all("T30 needs 45 dB" in result["reasons"]["T30"][i] for i in missing)
