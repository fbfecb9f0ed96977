"""A microphone's uploaded recording to one float64 channel at the sweep's sample rate.

Decoding: WAV (PCM 16, 24 and 32 bit, float32), FLAC and Ogg (Opus or Vorbis) through
libsndfile (the soundfile package); raw PCM from its declared sample rate, sample format and
channel count. The container must be the one declared.

Channels: the first channel is the recording. Phones put their main microphone there; averaging
channels from microphones centimetres apart would add their signals with different delays and
comb-filter the response, so other channels are dropped, not mixed in.

Checks, each a :class:`RecordingError` with a ``reason`` from :data:`REASONS`: undecodable or
mislabelled bytes, a sample rate outside 8-192 kHz, NaN or infinite samples (float formats),
digital silence (no sample above -90 dBFS, below a 16-bit LSB), clipping (a flat top of
:data:`~sonalyze.acoustics.signals.CLIPPED_RUN` samples at the peak), and a recording shorter
than the measurement needs or longer than it allows. The checks run on the samples as
recorded; then the channel is resampled to the sweep's rate.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile

from sonalyze.acoustics import clipped, resample
from sonalyze.acoustics.signals import Signal
from sonalyze.measurement_api import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    Container,
    RecordingFormat,
    SampleFormat,
)

REASONS = (
    "undecodable",
    "format_mismatch",
    "sample_rate",
    "non_finite",
    "silent",
    "clipped",
    "too_short",
    "too_long",
)
SILENCE_DBFS = -90.0
_BLOCK = 1 << 16  # frames decoded at a time
# libsndfile's names of the containers a declared one may hold.
_SNDFILE_FORMATS = {
    Container.wav: {"WAV", "WAVEX"},
    Container.flac: {"FLAC"},
    Container.ogg: {"OGG"},
}
# Raw PCM: numpy's type (None: 24 bit, unpacked by hand) and full scale.
_RAW: dict[SampleFormat, tuple[str | None, float]] = {
    SampleFormat.s16le: ("<i2", 2.0**15),
    SampleFormat.s24le: (None, 2.0**23),
    SampleFormat.s32le: ("<i4", 2.0**31),
    SampleFormat.f32le: ("<f4", 1.0),
}


class RecordingError(ValueError):
    """A recording the analysis cannot use; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[RecordingError], tuple[str, str]]:
        # Rebuilt whole when it crosses from an analysis worker process.
        return RecordingError, (self.reason, str(self))


def decode(
    data: bytes, declared: RecordingFormat, max_seconds: float = float("inf")
) -> tuple[Signal, int]:
    """The first channel in float64 re full scale, and the sample rate. The length is checked
    against ``max_seconds`` from the header, before anything is decoded, and the channel is
    decoded block by block, so a long or many-channel file costs no more memory than that."""
    if declared.container == Container.raw:
        channel, rate = _raw(data, declared, max_seconds)
        return channel, rate
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            if sound.format not in _SNDFILE_FORMATS[declared.container]:
                raise RecordingError(
                    "format_mismatch",
                    f"declared {declared.container.value}, but the bytes are "
                    f"{sound.format.lower()}",
                )
            _check_length(sound.frames, sound.samplerate, max_seconds)
            blocks = sound.blocks(_BLOCK, dtype="float64", always_2d=True)
            channel = np.concatenate([np.zeros(0), *(block[:, 0] for block in blocks)])
            return channel, int(sound.samplerate)
    except (soundfile.LibsndfileError, RuntimeError, EOFError) as error:
        raise RecordingError(
            "undecodable", f"the {declared.container.value} recording cannot be decoded: {error}"
        ) from None


def _check_length(frames: int, rate: int, max_seconds: float) -> None:
    if rate > 0 and frames > max_seconds * rate:
        raise RecordingError(
            "too_long",
            f"the recording lasts {frames / rate:.1f} s; the measurement takes at most "
            f"{max_seconds:.1f} s",
        )


def _raw(data: bytes, declared: RecordingFormat, max_seconds: float) -> tuple[Signal, int]:
    if declared.sample_format is None or declared.sample_rate is None:
        raise RecordingError("undecodable", "raw PCM needs a sample rate and format")
    dtype, scale = _RAW[declared.sample_format]
    width = 3 if dtype is None else np.dtype(dtype).itemsize
    frame = width * declared.channels
    if len(data) % frame:
        raise RecordingError(
            "undecodable",
            f"raw {declared.sample_format.value} with {declared.channels} channel(s) comes in "
            f"{frame}-byte frames; {len(data)} bytes is not a whole number of them",
        )
    _check_length(len(data) // frame, declared.sample_rate, max_seconds)
    if dtype is None:  # 24 bit: three bytes, little-endian, two's complement
        triples = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        ints = np.where(values >= 1 << 23, values - (1 << 24), values)
    else:
        ints = np.frombuffer(data, dtype=dtype)
    samples: Signal = (ints.reshape(-1, declared.channels)[:, 0] / scale).astype(np.float64)
    return samples, declared.sample_rate


def prepare(
    data: bytes,
    declared: RecordingFormat,
    sample_rate: int,
    min_seconds: float,
    max_seconds: float = float("inf"),
) -> Signal:
    """The recording's first channel, checked, at ``sample_rate`` (the sweep's).

    Raises
    ------
    RecordingError
        For any of :data:`REASONS` (see the module's notes).
    """
    channel, rate = decode(data, declared, max_seconds)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise RecordingError(
            "sample_rate", f"{rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if not np.all(np.isfinite(channel)):
        raise RecordingError("non_finite", "the recording contains NaN or infinite samples")
    seconds = channel.size / rate
    if seconds < min_seconds:
        raise RecordingError(
            "too_short",
            f"the recording lasts {seconds:.2f} s; the measurement needs {min_seconds:.2f} s",
        )
    peak = float(np.max(np.abs(channel)))
    if peak < 10 ** (SILENCE_DBFS / 20):
        raise RecordingError(
            "silent", f"the recording is silent (peak {20 * np.log10(max(peak, 1e-300)):.0f} dBFS)"
        )
    if clipped(channel):
        raise RecordingError(
            "clipped",
            f"the recording is clipped (a flat top at {20 * np.log10(peak):.1f} dBFS); record "
            "again with the phone further from the speaker or the speaker quieter",
        )
    return channel if rate == sample_rate else resample(channel, rate, sample_rate)
