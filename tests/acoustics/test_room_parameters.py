"""room_parameters against closed-form answers: exponential decays with a known reverberation
time under noise at 50 and 70 dB peak-to-noise ratio, broadband and per octave band, a known
direct-to-reverberant ratio, NaN with a reason when the decay range is too small, and bad input.

Broadband, the decay's carrier is a random sign per sample, so that the squared response *is*
the exponential envelope and every parameter has an exact value: with ``q = 10 ** (-6 / (T fs))``
the energy per sample, the discrete sums give ``C = 10 log10((1 - q**N) / q**N)`` for a boundary
of ``N`` samples, ``D = 1 - q**N`` and ``Ts = q / (1 - q) / fs``. Per band, each octave carries
one decaying tone at its mid-band frequency with its own reverberation time, and band-limited
noise at the band's peak-to-noise ratio; a random carrier would not do, since a band-limited
random decay scatters its own reverberation time by more than the 3 % asked for. A band's energy
ratios depend on its filter's delay, which no closed form captures; they are compared with the
same analysis of the noise-free response instead, so that what is tested is the noise handling.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonalyze.acoustics import OCTAVES, filter_bands, mid_band, onset, room_parameters

FS = 48_000
BANDS = OCTAVES[2:9]  # 125 Hz to 8 kHz
BAND_T = (1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8)
SEEDS = (0, 1, 2)


def exponential(t60: float, seconds: float, seed: int) -> np.ndarray:
    """Unit-peak decay with random signs whose squared samples are exactly ``q ** n``."""
    n = np.arange(int(seconds * FS))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], n.size)
    return signs * 10 ** (-3 * n / (t60 * FS))


def white_noise(size: int, psnr_db: float, seed: int) -> np.ndarray:
    """Noise whose mean energy is ``psnr_db`` below a unit peak."""
    return np.random.default_rng(seed + 1000).standard_normal(size) * 10 ** (-psnr_db / 20)


def closed_form(t60: float) -> dict[str, float]:
    q = 10 ** (-6 / (t60 * FS))
    n50, n80 = round(0.05 * FS), round(0.08 * FS)
    return {
        "EDT": t60,
        "T20": t60,
        "T30": t60,
        "C50": 10 * math.log10((1 - q**n50) / q**n50),
        "C80": 10 * math.log10((1 - q**n80) / q**n80),
        "D50": 1 - q**n50,
        "Ts": q / (1 - q) / FS,
    }


def assert_within_tolerances(actual: dict[str, float], expected: dict[str, float]) -> None:
    """The acceptance tolerances: 3 % for the decay times, 0.1 dB for clarity, 0.005 for D50,
    2 ms for the centre time."""
    for key in ("EDT", "T20", "T30"):
        assert actual[key] == pytest.approx(expected[key], rel=0.03), key
    for key in ("C50", "C80"):
        assert actual[key] == pytest.approx(expected[key], abs=0.1), key
    assert actual["D50"] == pytest.approx(expected["D50"], abs=0.005)
    assert actual["Ts"] == pytest.approx(expected["Ts"], abs=0.002)


def broadband_values(ir: np.ndarray) -> dict[str, float]:
    result = room_parameters(ir, FS)
    return {key: float(np.asarray(result[key])[0]) for key in closed_form(1.0)}


@pytest.mark.parametrize("psnr", [50, 70])
@pytest.mark.parametrize("t60", [0.3, 1.0, 2.0])
def test_broadband_decay_under_noise_gives_the_closed_form(psnr: float, t60: float) -> None:
    seconds = 1.4 * t60 * psnr / 60 + 0.3  # the decay reaches the noise well before the end
    pre_delay = np.zeros(int(0.02 * FS))
    for seed in SEEDS:
        clean = np.concatenate([pre_delay, exponential(t60, seconds, seed)])
        ir = clean + white_noise(clean.size, psnr, seed)
        assert onset(ir) == pre_delay.size
        assert_within_tolerances(broadband_values(ir), closed_form(t60))


def test_a_noise_free_decay_gives_the_closed_form_exactly() -> None:
    """No noise floor: nothing subtracted, the record integrated whole, the decay after its end
    extrapolated; every value matches the discrete closed form to rounding."""
    ir = exponential(0.8, 1.0, seed=3)  # ends 7.5 dB before a 60 dB decay would
    result = room_parameters(ir, FS)
    expected = closed_form(0.8)
    for key, value in expected.items():
        assert float(np.asarray(result[key])[0]) == pytest.approx(value, rel=1e-6), key
    assert result["INR"][0] == math.inf
    assert result["PSNR"] == math.inf


def banded_room(psnr: float, seed: int, seconds: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """One decaying tone per octave at its mid-band frequency (reverberation time ``BAND_T``),
    and noise filtered into each band at ``psnr`` below the band's unit peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    band_noise = filter_bands(rng.standard_normal(t.size), FS, BANDS)
    clean = np.zeros(t.size)
    noise = np.zeros(t.size)
    for nominal, t60, row in zip(BANDS, BAND_T, band_noise, strict=True):
        phase = rng.uniform(0, 2 * np.pi)
        clean += 10 ** (-3 * t / t60) * np.sin(2 * np.pi * mid_band(nominal, 1) * t + phase)
        noise += row / np.sqrt(np.mean(row**2)) * 10 ** (-psnr / 20)
    return clean, noise


@pytest.mark.parametrize("psnr", [50, 70])
def test_octave_band_decays_under_noise_give_their_reverberation_times(psnr: float) -> None:
    for seed in SEEDS:
        clean, noise = banded_room(psnr, seed)
        noisy = room_parameters(clean + noise, FS, BANDS)
        reference = room_parameters(clean, FS, BANDS)
        for key in ("EDT", "T20", "T30"):
            np.testing.assert_allclose(noisy[key], BAND_T, rtol=0.03, err_msg=key)
        for key, tolerance in (("C50", 0.1), ("C80", 0.1), ("D50", 0.005), ("Ts", 0.002)):
            np.testing.assert_allclose(noisy[key], reference[key], atol=tolerance, err_msg=key)
        assert all(reason is None for reasons in noisy.reasons.values() for reason in reasons)


def test_third_octave_bands_give_each_tone_its_reverberation_time() -> None:
    t = np.arange(2 * FS) / FS
    tones = {400: 1.2, 500: 0.9, 630: 0.6}  # third-octave mid-band frequencies, reverberation
    clean = sum(
        10 ** (-3 * t / t60) * np.sin(2 * np.pi * mid_band(nominal, 3) * t)
        for nominal, t60 in tones.items()
    )
    noise = white_noise(t.size, 80, seed=0)
    result = room_parameters(clean + noise, FS, list(tones), fraction=3)
    assert result.fraction == 3
    for key in ("EDT", "T20"):  # T30 reaches where the neighbouring tones leak in (4 %)
        np.testing.assert_allclose(result[key], list(tones.values()), rtol=0.03, err_msg=key)


def test_band_energy_ratios_of_a_noise_free_response_follow_their_definitions() -> None:
    """The reference of the test above, against the definitions summed directly over each
    filtered band from the broadband onset."""
    clean, _ = banded_room(70, seed=0)
    result = room_parameters(clean, FS, BANDS)
    start = onset(clean)
    n50, n80 = round(0.05 * FS), round(0.08 * FS)
    for index, row in enumerate(filter_bands(clean, FS, BANDS)):
        energy = row[start:] ** 2
        total = energy.sum()
        expected = {
            "C50": 10 * np.log10(energy[:n50].sum() / energy[n50:].sum()),
            "C80": 10 * np.log10(energy[:n80].sum() / energy[n80:].sum()),
            "D50": energy[:n50].sum() / total,
            "Ts": float(np.arange(energy.size) @ energy) / total / FS,
        }
        for key, value in expected.items():
            assert result[key][index] == pytest.approx(value, rel=1e-3, abs=1e-4), key


@pytest.mark.parametrize("psnr", [45, 60])
@pytest.mark.parametrize("drr", [-6.0, 0.0, 6.0])
def test_a_known_direct_to_reverberant_ratio_is_recovered(psnr: float, drr: float) -> None:
    """A direct sound as a loudspeaker radiates it (a 1 ms pulse), then from 5 ms after its
    start a decay whose energy is ``drr`` below the pulse's."""
    t60 = 0.6
    pulse = np.hanning(48)
    direct = float(pulse @ pulse)
    q = 10 ** (-6 / (t60 * FS))
    for seed in SEEDS:
        tail = exponential(t60, 1.4 * t60 * psnr / 60 + 0.3, seed)
        tail *= math.sqrt(direct * 10 ** (-drr / 10) * (1 - q))
        gap = np.zeros(round(0.005 * FS) - pulse.size)
        clean = np.concatenate([np.zeros(500), pulse, gap, tail])
        peak = float(np.max(clean**2))
        noise = white_noise(clean.size, psnr, seed) * math.sqrt(peak)
        result = room_parameters(clean + noise, FS)
        assert result["DRR"] == pytest.approx(drr, abs=0.2)
        assert result["PSNR"] == pytest.approx(psnr, abs=0.5)


def test_too_little_decay_range_gives_nan_with_the_reason() -> None:
    """At 40 dB the decay reaches the noise before T30's evaluation range ends."""
    ir = exponential(1.0, 1.2, seed=0)
    result = room_parameters(ir + white_noise(ir.size, 40, seed=0), FS)
    assert math.isnan(result["T30"][0])
    (reason,) = result.reasons["T30"]
    assert reason is not None
    assert "broadband" in reason and "T30 needs 45 dB" in reason
    assert result["T20"][0] == pytest.approx(1.0, rel=0.03)
    assert result.reasons["T20"] == (None,)


def test_noise_without_a_decay_gives_nan_everywhere_with_the_reason() -> None:
    noise = np.random.default_rng(5).standard_normal(FS)
    result = room_parameters(noise, FS, [500, 1000])
    for key in ("EDT", "T20", "T30", "C50", "C80", "D50", "Ts"):
        assert np.all(np.isnan(result[key])), key
        assert all(reason and "decay" in reason for reason in result.reasons[key]), key
    assert "500 Hz band" in str(result.reasons["T30"][0])
    assert math.isnan(float(result["DRR"]))


def test_the_result_is_a_mapping_of_every_parameter() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 70, seed=0)
    result = room_parameters(ir, FS, [250, 500, 1000])
    assert set(result) == {"EDT", "T20", "T30", "C50", "C80", "D50", "Ts", "INR", "DRR", "PSNR"}
    assert len(result) == 10
    assert result["T30"].shape == (3,)
    assert isinstance(result["DRR"], float)
    assert result.bands == (250, 500, 1000)
    assert set(result.correlation) == {"EDT", "T20", "T30"}
    assert np.all(result.correlation["T30"] < -0.99)


@pytest.mark.parametrize(
    ("ir", "fs", "bands", "fraction", "message"),
    [
        ([], FS, None, 1, "is empty"),
        ([1.0, np.nan, 0.5], FS, None, 1, "NaN or infinite"),
        ([1.0, np.inf, 0.5], FS, None, 1, "NaN or infinite"),
        (np.ones((2, 100)), FS, None, 1, "one channel"),
        (np.zeros(FS), FS, None, 1, "all zeros"),
        (np.ones(FS), 0, None, 1, "positive integer"),
        (np.ones(FS), 44_100.5, None, 1, "positive integer"),
        (np.ones(FS), FS, [1100], 1, "not a nominal 1/1-octave"),
        (np.ones(FS), FS, [500], 2, "fraction must be 1"),
        (np.ones(FS), FS, [], 1, "bands is empty"),
        (np.ones(FS), 16_000, [8000], 1, "above half the sample rate"),
        (exponential(0.1, 0.1, 0), FS, [125], 1, "125 Hz band needs at least 164 ms"),
        (exponential(0.1, 0.2, 0), FS, None, 1, "broadband needs at least 300 ms"),
    ],
)
def test_bad_input_raises_a_clear_value_error(
    ir: object, fs: object, bands: list[float] | None, fraction: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        room_parameters(ir, fs, bands, fraction)  # type: ignore[arg-type]


def test_the_input_is_left_unchanged() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 60, seed=0)
    copy = ir.copy()
    room_parameters(ir, FS, [1000])
    np.testing.assert_array_equal(ir, copy)
