"""ISO 3382-1 onset: the first sample within 20 dB of the peak, after noise and a pre-delay."""

from __future__ import annotations

import numpy as np
import pytest

from sonalyze.acoustics import onset

FS = 48_000


def delayed_room(delay: int, noise_db: float, seed: int = 0) -> np.ndarray:
    """Noise at ``noise_db`` below the peak, then at ``delay`` a direct sound and a decay."""
    rng = np.random.default_rng(seed)
    t = np.arange(FS // 2) / FS
    tail = 0.3 * rng.standard_normal(t.size) * np.exp(-6.91 * t / 0.5)
    tail[0] = 1.0
    ir = np.concatenate([np.zeros(delay), tail])
    return ir + rng.standard_normal(ir.size) * 10 ** (noise_db / 20) / 4


@pytest.mark.parametrize("delay", [0, 1, 480, 2400])
def test_onset_is_the_direct_sound_after_a_pre_delay_in_noise(delay: int) -> None:
    assert onset(delayed_room(delay, noise_db=-50)) == delay


def test_a_rise_before_the_peak_counts_once_it_is_within_20_db() -> None:
    ir = np.zeros(100)
    ir[10], ir[20], ir[30] = 0.05, 0.2, 1.0  # -26 dB, -14 dB, the peak
    assert onset(ir) == 20
    assert onset(ir, threshold_db=-30) == 10


@pytest.mark.parametrize(
    ("ir", "kwargs", "message"),
    [
        (np.array([]), {}, "is empty"),
        (np.zeros((2, 10)), {}, "one channel"),
        (np.array([0.0, np.nan, 1.0]), {}, "NaN"),
        (np.zeros(10), {}, "all zeros"),
        (np.ones(10), {"threshold_db": 0}, "below 0 dB"),
    ],
)
def test_bad_responses_are_refused(ir: np.ndarray, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        onset(ir, **kwargs)


@pytest.mark.parametrize("psnr", [25, 28, 30])
def test_noise_within_20_db_of_the_peak_does_not_pass_for_the_onset(psnr: float) -> None:
    """At these ratios hundreds of noise samples before the direct sound rise above -20 dB
    (ISO 3382-1's threshold); the onset is still the direct sound."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        ir = np.concatenate([np.zeros(FS // 2), [1.0], np.zeros(FS // 10)])
        noisy = ir + rng.standard_normal(ir.size) * 10 ** (-psnr / 20)
        assert np.sum(noisy[: FS // 2] ** 2 >= 0.01) > 0  # ISO's rule alone would fail
        assert onset(noisy) == FS // 2
