"""A response without noise, measured through the sweep path: a simulated impulse response that
simply ends, convolved with the sweep and deconvolved, sits on the deconvolution's numerical
noise 100 dB or more below it. Its record ends at a cliff, and it must be analysed as the same
response is directly: every parameter in every band within ISO 3382-1's just noticeable
difference (Table A.1: 5 % for EDT, T20 and T30; 1 dB for C50 and C80; 0.05 for D50; 10 ms for
Ts) of the direct analysis, none missing. Before, most bands were NaN with "too little decay
above the noise to fit the late decay: the peak is 149 dB above the noise".
"""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra
import pytest
from scipy import signal

from sonalyze.acoustics import (
    OCTAVES,
    RoomParameters,
    deconvolve,
    exponential_sweep,
    room_parameters,
)
from sonalyze.acoustics.analysis import BAND_PARAMETERS

FS = 48_000
BANDS = OCTAVES[2:9]
JND = {"EDT": 0.05, "T20": 0.05, "T30": 0.05, "C50": 1.0, "C80": 1.0, "D50": 0.05, "Ts": 0.010}
RELATIVE = ("EDT", "T20", "T30")


def exponential_cut(t60: float, range_db: float) -> np.ndarray:
    """Random signs under an exponential envelope, cut where it has fallen ``range_db``."""
    n = np.arange(round(t60 * range_db / 60 * FS))
    return np.random.default_rng(0).choice([-1.0, 1.0], n.size) * 10 ** (-3 * n / (t60 * FS))


def shoebox() -> np.ndarray:
    """A 6 x 5 x 3 m room, 0.6 s, image sources and ray tracing (seeded): it ends 90 dB down."""
    pra.random.seed(0)
    absorption, _ = pra.inverse_sabine(0.6, [6, 5, 3])
    room = pra.ShoeBox(
        [6, 5, 3], fs=FS, materials=pra.Material(absorption), max_order=3, ray_tracing=True
    )
    room.set_ray_tracing(receiver_radius=0.5, n_rays=10_000, energy_thres=1e-7)
    room.add_source([1.5, 1.2, 1.4])
    room.add_microphone([4.2, 3.1, 1.2])
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64)


def measured(ir: np.ndarray, after: float) -> np.ndarray:
    """``ir`` through a 2 s sweep recorded from 0.1 s before it to ``after`` s after the
    response ends, deconvolved: no noise but the arithmetic's."""
    sweep = exponential_sweep(20, 20_000, 2.0, FS, fade_in=0.01)
    heard = signal.fftconvolve(sweep.signal, ir)
    recording = np.concatenate([np.zeros(FS // 10), heard, np.zeros(round(after * FS))])
    return deconvolve(recording, sweep, FS)


def assert_within_one_jnd(direct: RoomParameters, through: RoomParameters) -> None:
    for key in BAND_PARAMETERS:
        assert all(reason is None for reason in through.reasons[key]), through.reasons[key]
        a, b = np.asarray(direct[key]), np.asarray(through[key])
        error = np.abs(b / a - 1) if key in RELATIVE else np.abs(b - a)
        assert np.all(error <= JND[key]), (key, a, b)


@pytest.mark.parametrize("after", [0.2, 1.0, 3.0])
@pytest.mark.parametrize(("t60", "range_db"), [(0.5, 60), (1.0, 80)])
def test_an_exponential_cut_abruptly_is_analysed_as_it_is_directly(
    t60: float, range_db: float, after: float
) -> None:
    ir = exponential_cut(t60, range_db)
    direct = room_parameters(ir, FS, BANDS)
    assert all(r is None for key in BAND_PARAMETERS for r in direct.reasons[key])
    through = room_parameters(measured(ir, after), FS, BANDS)
    assert_within_one_jnd(direct, through)
    assert through["PSNR"] > 80  # the numerical noise, far below


@pytest.mark.parametrize("after", [0.2, 1.0])
def test_a_simulated_room_through_the_sweep_path_is_analysed_as_it_is_directly(
    after: float,
) -> None:
    ir = shoebox()
    direct = room_parameters(ir, FS, BANDS)
    through = room_parameters(measured(ir, after), FS, BANDS)
    assert all(r is None for key in BAND_PARAMETERS for r in direct.reasons[key])
    assert_within_one_jnd(direct, through)


def test_the_record_is_cut_at_the_cliff_whatever_follows_it() -> None:
    """Each band's decay ends where the response does (within its filter's ringing), and is the
    same however long the numerical noise after it lasts."""
    ir = exponential_cut(0.5, 60)
    results = [room_parameters(measured(ir, after), FS, BANDS) for after in (0.2, 1.0, 3.0)]
    for band, first in enumerate(results[0].decays):
        assert first is not None
        assert abs(first.edc.size - ir.size) < 0.05 * FS, BANDS[band]
        for other in results[1:]:
            decay = other.decays[band]
            assert decay is not None
            assert decay.edc.size == first.edc.size
            np.testing.assert_allclose(decay.edc, first.edc, rtol=1e-6)
