"""combine_repetitions against a simulated room whose undisturbed measurement is known.

The room: a 6 x 5 x 3 m shoebox (pyroomacoustics' image sources, absorption for 0.9 s by
Sabine), computed once. The measurement: the default sweep (50 Hz-16 kHz, 10 s, 0.5 peak)
played three times back to back, recorded from 0.5 s before the first to 2.5 s after the last,
with white noise 55 dB below the recording's peak (each response's peak is then 76 dB above its
noise, and its T30 1.0-1.3 s per octave); the whole recording is deconvolved with one
sweep and a response of 2.5 s cut at the lags ``0.5 s + k D`` (D the sweep's length), as the
product does. The next sweep's second harmonic would come ``D - L ln 2`` = 8.8 s after each
response's start, far beyond its end. The truth is the average of the three responses of the
undisturbed recording; the disturbed recordings are the same recording with a disturbance
added, so that any difference is the disturbance's.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyroomacoustics as pra
import pytest
from scipy import signal

from sonalyze.acoustics import (
    OCTAVES,
    combine_repetitions,
    deconvolve,
    exponential_sweep,
    room_parameters,
)

FS = 48_000
SWEEP = exponential_sweep(50, 16_000, 10, FS, fade_in=0.05, fade_out=0.02, amplitude=0.5)
D = SWEEP.signal.size
REPEATS = 3
LEAD = FS // 2
LENGTH = int(2.5 * FS)
BANDS = OCTAVES[2:9]
NOISE_DB = -55.0
# Where each sweep starts in the recording, in samples.
START = [LEAD + k * D for k in range(REPEATS)]


@functools.cache
def room() -> np.ndarray:
    absorption, order = pra.inverse_sabine(0.9, [6, 5, 3])
    shoebox = pra.ShoeBox(
        [6, 5, 3], fs=FS, materials=pra.Material(absorption), max_order=order, air_absorption=False
    )
    shoebox.add_source([1.5, 1.5, 1.5])
    shoebox.add_microphone([4.2, 3.1, 1.2])
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0])


def played(kelvin_per_repeat: float = 0.0) -> np.ndarray:
    """The room's output for the three sweeps and no noise; the air warming between the
    repetitions by ``kelvin_per_repeat`` stretches each next response by the speed of sound."""
    out = np.zeros(START[-1] + D + LENGTH)
    for k, start in enumerate(START):
        stretch = 1 + k * kelvin_per_repeat / (2 * 293.15)
        response = signal.resample(room(), round(room().size * stretch)) if k else room()
        part = signal.fftconvolve(SWEEP.signal, response)[: out.size - start]
        out[start : start + part.size] += part
    return out


@functools.cache
def clean() -> np.ndarray:
    return played()


@functools.cache
def noise() -> np.ndarray:
    level = np.max(np.abs(clean())) * 10 ** (NOISE_DB / 20)
    return np.random.default_rng(0).standard_normal(clean().size) * level


def slam(at: float, level: float = 1.0, seed: int = 1) -> np.ndarray:
    """A door slam ``at`` s into the recording: noise decaying with a 10 ms time constant,
    low-passed at 1 kHz, its peak ``level`` times the recorded sweeps'."""
    t = np.arange(int(0.2 * FS)) / FS
    burst = np.random.default_rng(seed).standard_normal(t.size) * np.exp(-t / 0.01)
    burst = signal.sosfilt(signal.butter(2, 1000, fs=FS, output="sos"), burst)
    burst *= level * np.max(np.abs(clean())) / np.max(np.abs(burst))
    return placed(burst, at)


def speech(at: float, seconds: float = 2.0, seed: int = 2) -> np.ndarray:
    """Speech-like noise ``at`` s into the recording: noise band-limited to 250 Hz-4 kHz, its
    amplitude modulated at four syllables a second, its power 10 dB below the sweeps'."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    band = signal.butter(4, (250, 4000), btype="bandpass", fs=FS, output="sos")
    voice = signal.sosfilt(band, rng.standard_normal(t.size))
    voice *= np.sin(2 * np.pi * 2 * t + rng.uniform(0, np.pi)) ** 2 * (1 + 0.5 * np.sin(3 * t))
    sweeps = clean()[LEAD : START[-1] + D]
    voice *= np.sqrt(np.mean(sweeps**2) / np.mean(voice**2) / 10)
    return placed(voice, at)


def placed(sound: np.ndarray, at: float) -> np.ndarray:
    out = np.zeros(clean().size)
    start = round(at * FS)
    out[start : start + sound.size] = sound
    return out


def cut(recording: np.ndarray) -> list[np.ndarray]:
    """One deconvolution with one sweep; each repetition's response at its own lags."""
    response = deconvolve(recording, SWEEP, FS)
    return [response[start : start + LENGTH] for start in START]


def during(index: int, seconds: float) -> float:
    """The recording time ``seconds`` into sweep ``index``."""
    return START[index] / FS + seconds


DISTURBANCES = {
    "none": lambda: 0.0,
    # 5 s into the second sweep: at lags 0-2.5 s it lands at 210-880 Hz (250 and 500 Hz bands)
    "door slam": lambda: slam(during(1, 5.0)),
    "speech": lambda: speech(during(0, 3.0)),
    "slams in two": lambda: slam(during(0, 5.0)) + slam(during(1, 4.0), seed=3),
    "slams in all": lambda: (
        slam(during(0, 5.0), 1.0) + slam(during(1, 4.0), 0.3, 3) + slam(during(2, 6.0), 0.1, 4)
    ),
}


@functools.cache
def responses(disturbance: str) -> tuple[np.ndarray, ...]:
    return tuple(cut(clean() + noise() + DISTURBANCES[disturbance]()))


@functools.cache
def truth() -> dict[str, np.ndarray]:
    return analysed(np.mean(responses("none"), axis=0))


def analysed(response: np.ndarray) -> dict[str, np.ndarray]:
    result = room_parameters(response, FS, BANDS)
    return {key: np.asarray(result[key]) for key in ("EDT", "T20", "T30", "C50", "C80")}


def disagreements(response: np.ndarray) -> list[str]:
    """Where the parameters differ from the truth's: beyond 5 % for EDT, T20 and T30, 1 dB for
    C50 and C80, or missing, in the bands where the truth has a value."""
    found = []
    actual = analysed(response)
    for key, expected in truth().items():
        for band, want, got in zip(BANDS, expected, actual[key], strict=True):
            tolerance = 0.05 * want if key.startswith(("EDT", "T")) else 1.0
            if math.isfinite(want) and not abs(got - want) <= tolerance:
                found.append(f"{key} at {band} Hz: {got:.3f} against {want:.3f}")
    return found


def noise_energy(response: np.ndarray) -> float:
    """The mean energy of the last 0.5 s, where the response has long decayed into the noise,
    from 88 Hz to 11.3 kHz (the octaves 125 Hz-8 kHz). Broadband, the deconvolved noise is
    mostly a narrow band at the sweep's faded top (16 kHz), and its level (and a PSNR) scatters
    by 0.4 dB from one repetition to another."""
    band = signal.butter(4, (88, 11_300), btype="bandpass", fs=FS, output="sos")
    return float(np.mean(signal.sosfilt(band, response)[-FS // 2 :] ** 2))


def test_without_a_disturbance_nothing_is_dropped_and_three_buy_4_8_db() -> None:
    """Within 0.2 dB of 10 log10(3), measured by combine_repetitions and here in the last half
    second (both scatter by less than 0.1 dB over noise seeds)."""
    rows = responses("none")
    combined = combine_repetitions(rows, FS)
    assert combined.kept == (0, 1, 2)
    assert combined.dropped == {}
    assert combined.warnings == ()
    assert combined.expected_gain == pytest.approx(10 * math.log10(3))
    assert combined.snr_gain == pytest.approx(10 * math.log10(3), abs=0.2)
    single = np.mean([noise_energy(row) for row in rows])
    gain = 10 * math.log10(single / noise_energy(combined.response))
    assert gain == pytest.approx(10 * math.log10(3), abs=0.2)


@pytest.mark.parametrize(
    ("disturbance", "index", "bands"),
    [("door slam", 1, ("250", "500")), ("speech", 0, ("250", "500"))],
)
def test_the_disturbed_repetition_is_dropped_and_the_rest_give_the_truth(
    disturbance: str, index: int, bands: tuple[str, ...]
) -> None:
    rows = responses(disturbance)
    combined = combine_repetitions(rows, FS)
    assert list(combined.dropped) == [index]
    assert combined.kept == tuple(i for i in range(REPEATS) if i != index)
    reason = combined.dropped[index]
    assert reason.startswith(f"repetition {index + 1} of 3: ")
    assert "dB more energy than the others" in reason
    assert all(band in reason for band in bands)
    assert combined.warnings == ()
    assert combined.snr_gain == pytest.approx(10 * math.log10(2), abs=0.2)
    assert disagreements(combined.response) == []
    assert disagreements(np.mean(rows, axis=0)) != []  # the plain average is wrong


@pytest.mark.parametrize(
    ("disturbance", "pair", "dropped"),
    [("door slam", (0, 1), 1), ("door slam", (1, 2), 0), ("speech", (0, 2), 0)],
)
def test_of_two_repetitions_the_disturbed_one_is_dropped(
    disturbance: str, pair: tuple[int, int], dropped: int
) -> None:
    rows = responses(disturbance)
    combined = combine_repetitions([rows[i] for i in pair], FS)
    assert list(combined.dropped) == [dropped]
    assert combined.dropped[dropped].startswith(f"repetition {dropped + 1} of 2: ")
    assert combined.kept == (1 - dropped,)
    np.testing.assert_array_equal(combined.response, rows[pair[1 - dropped]])
    assert combined.snr_gain == 0.0
    assert combined.warnings == ()


def test_two_undisturbed_repetitions_are_both_kept() -> None:
    rows = responses("door slam")
    combined = combine_repetitions([rows[0], rows[2]], FS)
    assert combined.kept == (0, 1)
    assert combined.dropped == {}
    assert combined.snr_gain == pytest.approx(10 * math.log10(2), abs=0.2)


def test_one_repetition_is_returned_as_it_is() -> None:
    row = responses("door slam")[1]
    combined = combine_repetitions([row], FS)
    np.testing.assert_array_equal(combined.response, row)
    assert combined.kept == (0,)
    assert combined.dropped == {}
    assert combined.snr_gain == 0.0
    assert combined.expected_gain == 0.0


def test_more_than_half_disturbed_is_reported() -> None:
    combined = combine_repetitions(responses("slams in two"), FS)
    assert combined.kept == (2,)
    assert sorted(combined.dropped) == [0, 1]
    assert combined.warnings == (
        "2 of the 3 repetitions were disturbed: the comparison that finds the odd one out is "
        "itself in doubt; measure again",
    )


def test_when_all_are_disturbed_the_least_disturbed_is_kept_and_named() -> None:
    combined = combine_repetitions(responses("slams in all"), FS)
    assert combined.kept == (2,)  # its slam was the faintest
    assert sorted(combined.dropped) == [0, 1]
    majority, kept = combined.warnings
    assert majority.startswith("3 of the 3 repetitions were disturbed")
    assert kept.startswith("repetition 3 of 3: ") and kept.endswith("kept, the least disturbed")


def test_a_room_that_changes_between_repetitions_loses_nothing_but_is_reported() -> None:
    """0.05 K warmer air at each repetition: the late responses differ in phase above 1 kHz by
    far more than the noise, not in energy, so nothing is dropped; but the average loses their
    late energy there, as the warning says, and its decay at 8 kHz is too short."""
    rows = cut(played(kelvin_per_repeat=0.05) + noise())
    combined = combine_repetitions(rows, FS)
    assert combined.kept == (0, 1, 2)
    assert combined.dropped == {}
    (warning,) = combined.warnings
    assert warning.startswith("the repetitions differ beyond the noise in the 1000, 2000, 4000")
    assert "the room changed between them" in warning
    assert analysed(combined.response)["T30"][-1] < 0.9 * truth()["T30"][-1]


GOOD = np.random.default_rng(5).standard_normal(FS)  # any second of samples


@pytest.mark.parametrize(
    ("rows", "fs", "message"),
    [
        ([], FS, "no responses"),
        ([GOOD, GOOD[:-1]], FS, "equally long"),
        ([GOOD, np.where(np.arange(GOOD.size) == 7, np.nan, GOOD)], FS, "repetition 2's .* NaN"),
        ([GOOD, np.stack([GOOD, GOOD])], FS, "one channel"),
        ([GOOD[: FS // 4], GOOD[: FS // 4]], FS, "comparing them needs at least 500 ms"),
        ([GOOD, GOOD], 48_000.0, "sample rate"),
        ([GOOD, GOOD], 200, "no octave band"),
    ],
)
def test_bad_input_is_refused(rows: list[np.ndarray], fs: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        combine_repetitions(rows, fs)


@pytest.mark.parametrize("first", [0, -1, 1.0, True])
def test_a_bad_first_number_is_refused(first: object) -> None:
    with pytest.raises(ValueError, match="first must be a positive integer"):
        combine_repetitions([GOOD, GOOD], FS, first=first)  # type: ignore[arg-type]
