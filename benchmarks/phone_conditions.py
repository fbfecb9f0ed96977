"""What a phone measurement can and cannot tell you: the conditions real phones produce, each
simulated with the truth known, through :func:`sonalyze.acoustics.analyse_recording`.

The room is a pyroomacoustics 6 x 5 x 3 m shoebox (image sources to order 3, then ray
tracing, absorption for a Sabine reverberation time of 1 s, air absorption; seeded, so every
run is the same room); the sweep is the measurement service's default (50 Hz-16 kHz, 10 s,
48 kHz, -6 dBFS), recorded from 1 s before it to 3 s after it with noise at a stated
peak-to-noise ratio of the response. The truth is :func:`~sonalyze.acoustics.room_parameters`
of the room's own impulse response. Each condition's error is in just noticeable differences
(ISO 3382-1 Table A.1: 5 % for EDT, T20 and T30, 1 dB for C50 and C80, 0.05 for D50, 10 ms
for Ts; and 1 dB for DRR, which the standard does not list), over the values the analysis
reports without doubt in the octave bands 125 Hz-8 kHz, and over the reverberation time it
offers to read (against the room's own value of the parameter it names). A value that is NaN
with its reason, or marked doubtful, is what the analysis said of it, and is not counted.

Run from the workspace root (about a minute):

    python3.11 -m uv run python benchmarks/phone_conditions.py            # the README's table
    python3.11 -m uv run python benchmarks/phone_conditions.py --details  # per band, too

The README's table "What a phone measurement can and cannot tell you" is this script's output,
and a test (tests/acoustics/test_phone_conditions.py) holds it to that.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

from sonalyze.acoustics import (
    OCTAVES,
    RecordingAnalysis,
    RecordingAnalysisError,
    Sweep,
    analyse_recording,
    deconvolve,
    exponential_sweep,
    room_parameters,
)
from sonalyze.acoustics.analysis import BAND_PARAMETERS, RoomParameters

FS = 48_000
BANDS = OCTAVES[2:9]
LEAD_IN, TAIL = 1.0, 3.0
PSNR = 70.0  # the response's peak-to-noise ratio, unless a condition says otherwise
# ISO 3382-1 Table A.1 (DRR: ours): relative for the decay times, absolute for the rest.
JND = {"EDT": 0.05, "T20": 0.05, "T30": 0.05, "C50": 1.0, "C80": 1.0, "D50": 0.05, "Ts": 0.01}
RELATIVE = ("EDT", "T20", "T30")
DRR_JND = 1.0


@functools.cache
def sweep(duration: float = 10.0) -> Sweep:
    """The measurement service's default sweep (its ``DEFAULT_SWEEP``)."""
    return exponential_sweep(50, 16_000, duration, FS, fade_in=0.05, fade_out=0.02, amplitude=0.5)


@functools.cache
def room() -> np.ndarray:
    """The room's impulse response from the speaker to the microphone, peak 1."""
    import pyroomacoustics as pra  # the simulation service's dependency, not the library's

    pra.random.seed(0)
    absorption, _ = pra.inverse_sabine(1.0, [6, 5, 3])
    shoebox = pra.ShoeBox(
        [6, 5, 3],
        fs=FS,
        materials=pra.Material(absorption, 0.1),
        max_order=3,
        ray_tracing=True,
        air_absorption=True,
    )
    shoebox.set_ray_tracing(receiver_radius=0.5, n_rays=10_000, energy_thres=1e-7)
    shoebox.add_source([1.5, 1.2, 1.4])
    shoebox.add_microphone([4.2, 3.1, 1.2])
    shoebox.compute_rir()
    ir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    return ir / np.max(np.abs(ir))


@functools.cache
def truth() -> RoomParameters:
    return room_parameters(room(), FS, BANDS)


def through_room(played: np.ndarray, lead_in: float = LEAD_IN, tail: float = TAIL) -> np.ndarray:
    """What the microphone hears of ``played``, from ``lead_in`` before it to ``tail`` after."""
    padded = np.concatenate([np.zeros(round(lead_in * FS)), played, np.zeros(round(tail * FS))])
    heard: np.ndarray = signal.fftconvolve(padded, room())[: padded.size]
    return heard


def with_noise(recording: np.ndarray, psnr_db: float, seed: int = 0) -> np.ndarray:
    """White noise added at the level that gives the deconvolved response ``psnr_db``."""
    noise = np.random.default_rng(seed).standard_normal(recording.size)
    clean = deconvolve(recording, sweep(), FS)
    through = deconvolve(noise, sweep(), FS)
    scale = math.sqrt(float(np.max(clean**2) / np.mean(through**2)) * 10 ** (-psnr_db / 10))
    return recording + scale * noise


def speech(size: int, level: float, seed: int = 3) -> np.ndarray:
    """Speech-like noise: 250 Hz-4 kHz, its level swinging at a syllable rate (4 Hz), RMS
    ``level``."""
    rng = np.random.default_rng(seed)
    noise = signal.sosfilt(signal.butter(4, (250, 4000), "bandpass", fs=FS, output="sos"),
                           rng.standard_normal(size))  # fmt: skip
    t = np.arange(size) / FS
    voiced = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 2
    talk = noise * voiced
    return talk * level / math.sqrt(float(np.mean(talk**2)))


def door_slam(peak: float, seed: int = 4) -> np.ndarray:
    """A door slamming in the room: a low-passed burst decaying in 20 ms, and the room's
    reverberation of it."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(0.2 * FS)) / FS
    burst = signal.sosfilt(signal.butter(2, 800, fs=FS, output="sos"), rng.standard_normal(t.size))
    burst *= np.exp(-t / 0.02)
    heard: np.ndarray = signal.fftconvolve(burst, room())
    return heard * peak / np.max(np.abs(heard))


def at(recording: np.ndarray, extra: np.ndarray, seconds: float) -> np.ndarray:
    """``extra`` added to ``recording`` from ``seconds`` on."""
    out = recording.copy()
    start = round(seconds * FS)
    stop = min(out.size, start + extra.size)
    out[start:stop] += extra[: stop - start]
    return out


def drifted(recording: np.ndarray, ppm: float) -> np.ndarray:
    """The recording as a microphone whose clock runs ``ppm`` fast samples it: band-limited
    interpolation (FFT) onto its time base."""
    size = round(recording.size * (1 + ppm * 1e-6))
    out: np.ndarray = signal.resample(recording, size)
    return out


def clipped_speaker(played: np.ndarray, over_db: float) -> np.ndarray:
    """A speaker phone's digital limiter that clips: the sweep ``over_db`` above the clip level
    (the harmonics above 24 kHz fold back as aliases)."""
    level = float(np.max(np.abs(played)))
    return np.clip(played * 10 ** (over_db / 20), -level, level)


def distorting_speaker(played: np.ndarray, amount: float) -> np.ndarray:
    """A speaker with a smooth (polynomial) non-linearity: harmonics 2 and 3 without aliases."""
    x = played / float(np.max(np.abs(played)))
    return 0.5 * (x + amount * x**2 + amount * x**3) / (1 + 2 * amount)


def high_passed(x: np.ndarray, hz: float, order: int = 2) -> np.ndarray:
    out: np.ndarray = signal.sosfilt(signal.butter(order, hz, "highpass", fs=FS, output="sos"), x)
    return out


@dataclass(frozen=True)
class Condition:
    name: str
    handling: str  # what the library does about it
    recording: Callable[[], np.ndarray]
    repeats: int = 1
    fs: int = FS


def _sweeps(repeats: int = 1) -> np.ndarray:
    return np.tile(sweep().signal, repeats)


def _speech_during(repeats: int) -> np.ndarray:
    clean = through_room(_sweeps(repeats))
    level = float(np.sqrt(np.mean(clean[round(LEAD_IN * FS) : -round(TAIL * FS)] ** 2)))
    talk = speech(round(4 * FS), level * 10 ** (-10 / 20))
    return with_noise(at(clean, talk, LEAD_IN + 3.0), PSNR)


def _slam_during(repeats: int) -> np.ndarray:
    clean = through_room(_sweeps(repeats))
    return with_noise(at(clean, door_slam(2 * float(np.max(np.abs(clean)))), LEAD_IN + 5.0), PSNR)


def _late_start() -> np.ndarray:
    # Lead-in 0.2 s asked; the microphone's clock sync 300 ms off: it began 0.1 s into the sweep.
    return with_noise(through_room(_sweeps(), lead_in=0.2), PSNR)[round(0.3 * FS) :]


def _sample_rate_mismatch() -> np.ndarray:
    # Recorded at 44.1 kHz, declared (and analysed) as 48 kHz.
    heard = with_noise(through_room(_sweeps()), PSNR)
    return np.asarray(signal.resample_poly(heard, 147, 160))


def _noiseless() -> np.ndarray:
    return through_room(_sweeps())


CONDITIONS = (
    Condition(
        "Clean: 70 dB peak-to-noise ratio",
        "Reference: the room's own numbers",
        lambda: with_noise(through_room(_sweeps()), PSNR),
    ),
    Condition(
        "Speech 10 dB below the sweep, during it",
        "Decays that are not straight (ISO 3382-2 Annex B) marked doubtful, kept out of the "
        "average",
        lambda: _speech_during(1),
    ),
    Condition(
        "Speech during the first of 3 sweeps",
        "The disturbed repetition found and dropped, the others averaged",
        lambda: _speech_during(3),
        repeats=3,
    ),
    Condition(
        "A door slam during the sweep",
        "Decays that are not straight marked doubtful, kept out of the average",
        lambda: _slam_during(1),
    ),
    Condition(
        "A door slam during the first of 3 sweeps",
        "The disturbed repetition found and dropped, the others averaged",
        lambda: _slam_during(3),
        repeats=3,
    ),
    Condition(
        "A linear speaker at 30 dB peak-to-noise ratio",
        "Harmonics judged against the noise in their own lags: not flagged",
        lambda: with_noise(through_room(_sweeps()), 30.0),
    ),
    Condition(
        "A speaker with harmonics 23 dB below the response",
        "Flagged non_linear (harmonics within 26 dB), separated from the response",
        lambda: with_noise(through_room(distorting_speaker(_sweeps(), 0.135)), 60.0),
    ),
    Condition(
        "Phone microphone (high-pass 150 Hz) and speaker (300 Hz)",
        "Bands whose filter passes more from outside the band than inside refused (125 Hz), "
        "more than a quarter marked doubtful (250 Hz)",
        lambda: with_noise(high_passed(high_passed(through_room(_sweeps()), 300, 4), 150), PSNR),
    ),
    Condition(
        "Recording began 0.1 s after the sweep (lead-in 0.2 s, clock 300 ms off)",
        "Direct sound found at a negative lag; the sweep had reached 53 Hz, below every band: "
        "nothing lost",
        _late_start,
    ),
    Condition(
        "Recording began 1.9 s after the sweep (which had passed 148 Hz)",
        "The band the missed start covered (125 Hz) refused with that reason, the rest exact",
        lambda: with_noise(through_room(_sweeps(), lead_in=0.0), PSNR)[round(1.9 * FS) :],
    ),
    Condition(
        "44.1 kHz data declared as 48 kHz",
        "Refused: sample_rate_mismatch",
        _sample_rate_mismatch,
    ),
    Condition(
        "Microphone clock 200 ppm fast",
        "Drift estimated from the recording and corrected",
        lambda: drifted(with_noise(through_room(_sweeps()), PSNR), 200),
    ),
    Condition(
        "Microphone clock 200 ppm slow",
        "Drift estimated from the recording and corrected",
        lambda: drifted(with_noise(through_room(_sweeps()), PSNR), -200),
    ),
    Condition(
        "Speaker phone clipping 6 dB over (aliased harmonics)",
        "Flagged non_linear; bands the aliases disturb marked doubtful",
        lambda: with_noise(through_room(clipped_speaker(_sweeps(), 6.0)), PSNR),
    ),
    Condition(
        "Speaker phone clipping 1 dB over",
        "Below the non_linear limit; what its aliases change stays within 1 JND",
        lambda: with_noise(through_room(clipped_speaker(_sweeps(), 1.0)), PSNR),
    ),
    Condition(
        "No noise at all (a simulation through the sweep path)",
        "The response's end recognised as its end, not as noise",
        _noiseless,
    ),
    Condition(
        "50 dB peak-to-noise ratio, typical of phones",
        "T30 NaN with its reason; the reverberation time to read falls back to T20",
        lambda: with_noise(through_room(_sweeps()), 50.0),
    ),
)


@dataclass(frozen=True)
class Outcome:
    """One condition's analysis against the truth."""

    condition: Condition
    analysis: RecordingAnalysis | RecordingAnalysisError  # the error, if it refused it
    errors: dict[str, np.ndarray]  # per parameter, per band, in JND; NaN where not counted
    reverberation_jnd: np.ndarray  # the reverberation time offered, per band, in JND
    drr_jnd: float

    @property
    def refused(self) -> str | None:
        error = self.analysis
        return error.reason if isinstance(error, RecordingAnalysisError) else None

    @property
    def analysed(self) -> RecordingAnalysis:
        assert isinstance(self.analysis, RecordingAnalysis), self.analysis
        return self.analysis

    @property
    def worst(self) -> float:
        """The largest error among the values reported without doubt, in JND."""
        values = [*(e for e in self.errors.values()), self.reverberation_jnd, [self.drr_jnd]]
        finite = [abs(v) for row in values for v in np.ravel(row) if math.isfinite(v)]
        return max(finite, default=math.nan)


def _jnd_errors(result: RoomParameters) -> dict[str, np.ndarray]:
    reference = truth()
    errors = {}
    for key in BAND_PARAMETERS:
        measured = np.asarray(result[key], dtype=float)
        true = np.asarray(reference[key], dtype=float)
        error = (measured / true - 1) if key in RELATIVE else (measured - true)
        doubtful = np.array([reason is not None for reason in result.suspect[key]])
        errors[key] = np.where(doubtful, np.nan, error / JND[key])
    return errors


def evaluate(condition: Condition) -> Outcome:
    """``condition``'s recording analysed, and its errors against the truth."""
    try:
        analysis = analyse_recording(
            condition.recording(), condition.fs, sweep(), repeats=condition.repeats, bands=BANDS
        )
    except RecordingAnalysisError as error:
        nothing = np.full(len(BANDS), np.nan)
        return Outcome(condition, error, {k: nothing for k in BAND_PARAMETERS}, nothing, math.nan)
    result = analysis.parameters
    # The reverberation time offered against the room's own value of the one it says it is.
    true_t = np.array(
        [
            math.nan if source is None else float(truth()[source][band])
            for band, source in enumerate(result.reverberation_source)
        ]
    )
    offered = (result.reverberation_time / true_t - 1) / JND["T30"]
    return Outcome(
        condition,
        analysis,
        _jnd_errors(result),
        offered,
        (result.drr - truth().drr) / DRR_JND,
    )


def summary(outcome: Outcome) -> tuple[str, str, str, str]:
    """The README's row: condition, what the library does, what it reported, the worst error
    among what it reported without doubt (JND)."""
    name, handling = outcome.condition.name, outcome.condition.handling
    if outcome.refused:
        return name, handling, f"refused ({outcome.refused})", "-"
    said = ", ".join(outcome.analysed.flags) or "no flag"
    return name, handling, said, f"{outcome.worst:.1f}"


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| Condition | What the analysis does | Flags | Worst error reported without doubt (JND) |",
        "|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(summary(outcome)) + " |" for outcome in outcomes]
    return "\n".join(lines)


def details(outcome: Outcome) -> str:
    lines = [f"## {outcome.condition.name}"]
    if outcome.refused:
        return "\n".join([*lines, str(outcome.analysis)])
    analysis = outcome.analysed
    harmonics = analysis.harmonics
    lines.append(
        f"drift {analysis.clock_drift_ppm:+.1f} ppm, start {analysis.start_s:+.3f} s, "
        f"harmonics {harmonics.level_db:.1f} dB (floor {harmonics.floor_db:.1f}), "
        f"flags {', '.join(analysis.flags)}, dropped {analysis.dropped}"
    )
    for key, errors in outcome.errors.items():
        lines.append(f"{key:>4}: " + " ".join(f"{e:+6.1f}" for e in errors))
    lines.append("   T: " + " ".join(f"{e:+6.1f}" for e in outcome.reverberation_jnd))
    lines.append(f" DRR: {outcome.drr_jnd:+6.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--details", action="store_true", help="errors per band, too")
    args = parser.parse_args()
    outcomes = [evaluate(condition) for condition in CONDITIONS]
    print(table(outcomes))
    if args.details:
        for outcome in outcomes:
            print()
            print(details(outcome))


if __name__ == "__main__":
    main()
