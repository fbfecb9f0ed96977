"""Uploaded recordings decoded and checked: every accepted format gives back the samples that
were encoded (resampled to the sweep's rate), the first channel is the recording, and each
kind of unusable recording is refused with its reason."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from sonalyze.acoustics import resample
from sonalyze.measurement_api import RecordingFormat
from sonalyze_measurement.audio import RecordingError, prepare

FS = 48_000


def tone(rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    """A -6 dBFS 997 Hz tone; further channels carry other tones."""
    t = np.arange(int(rate * seconds)) / rate
    columns = [0.5 * np.sin(2 * np.pi * (997 + 300 * k) * t) for k in range(channels)]
    return np.stack(columns, axis=1)


def encoded(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    n = min(estimate.size, reference.size)
    error = estimate[:n] - reference[:n]
    return float(10 * np.log10(np.sum(reference[:n] ** 2) / np.sum(error**2)))


@pytest.mark.parametrize(
    ("fmt", "subtype", "container", "floor_db"),
    [
        ("WAV", "PCM_16", "wav", 90),
        ("WAV", "PCM_24", "wav", 130),
        ("WAV", "PCM_32", "wav", 150),
        ("WAV", "FLOAT", "wav", 150),
        ("FLAC", "PCM_16", "flac", 90),
        ("FLAC", "PCM_24", "flac", 130),
    ],
)
@pytest.mark.parametrize("rate", [48_000, 44_100])
def test_lossless_formats_give_back_the_encoded_samples(
    fmt: str, subtype: str, container: str, floor_db: float, rate: int
) -> None:
    original = tone(rate, channels=2)
    data = encoded(original, rate, fmt, subtype)
    channel = prepare(data, RecordingFormat(container=container), FS, min_seconds=0.5)
    reference = original[:, 0] if rate == FS else resample(original[:, 0], rate, FS)
    assert channel.dtype == np.float64
    assert abs(channel.size - FS) <= 1
    assert snr_db(channel, reference) > floor_db - 10  # quantisation only


@pytest.mark.parametrize("subtype", ["OPUS", "VORBIS"])
def test_ogg_as_browsers_record_it_is_decoded(subtype: str) -> None:
    original = tone(FS)
    data = encoded(original, FS, "OGG", subtype)
    channel = prepare(data, RecordingFormat(container="ogg"), FS, min_seconds=0.5)
    # Lossy, and Opus delays its output: compare the level, not the waveform.
    assert abs(channel.size - FS) < FS // 10
    rms = np.sqrt(np.mean(channel[FS // 10 : -FS // 10] ** 2))
    assert 20 * np.log10(rms / (0.5 / np.sqrt(2))) == pytest.approx(0, abs=0.5)


@pytest.mark.parametrize(
    ("sample_format", "dtype", "scale"),
    [("s16le", "<i2", 2**15), ("s32le", "<i4", 2**31), ("f32le", "<f4", 1.0)],
)
def test_raw_pcm_with_its_declared_rate_and_format(
    sample_format: str, dtype: str, scale: float
) -> None:
    original = tone(44_100, channels=2)
    ints = np.round(original * (scale - 1)) if scale > 1 else original
    data = ints.astype(dtype).tobytes()  # interleaved
    declared = RecordingFormat(
        container="raw", sample_rate=44_100, sample_format=sample_format, channels=2
    )
    channel = prepare(data, declared, FS, min_seconds=0.5)
    assert snr_db(channel, resample(original[:, 0], 44_100, FS)) > 80


def test_raw_24_bit_pcm_is_unpacked_with_its_sign() -> None:
    values = np.array([0, 1, -1, 2**23 - 1, -(2**23), 1234567, -1234567] * 7000)
    data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    declared = RecordingFormat(container="raw", sample_rate=FS, sample_format="s24le")
    channel = prepare(data, declared, FS, min_seconds=0.5)
    np.testing.assert_array_equal(channel, values / 2**23)


def test_the_first_channel_is_the_recording() -> None:
    stereo = tone(FS, channels=2)
    data = encoded(stereo, FS, "WAV", "FLOAT")
    channel = prepare(data, RecordingFormat(container="wav"), FS, min_seconds=0.5)
    np.testing.assert_allclose(channel, stereo[:, 0], atol=1e-7)


def refused(data: bytes, declared: RecordingFormat) -> RecordingError:
    with pytest.raises(RecordingError) as caught:
        prepare(data, declared, FS, min_seconds=0.5, max_seconds=2.0)
    return caught.value


WAV = RecordingFormat(container="wav")


@pytest.mark.parametrize(
    ("data", "declared", "reason", "message"),
    [
        (b"not audio at all" * 100, WAV, "undecodable", "cannot be decoded"),
        (encoded(tone(FS), FS, "FLAC", "PCM_16"), WAV, "format_mismatch", "bytes are flac"),
        (encoded(tone(4_000), 4_000, "WAV", "PCM_16"), WAV, "sample_rate", "4000 Hz"),
        (encoded(tone(FS) * np.nan, FS, "WAV", "FLOAT"), WAV, "non_finite", "NaN"),
        (encoded(tone(FS) * 1e-6, FS, "WAV", "FLOAT"), WAV, "silent", "silent"),
        (encoded(np.clip(tone(FS) * 4, -1, 1), FS, "WAV", "PCM_16"), WAV, "clipped", "clipped"),
        (encoded(tone(FS, 0.2), FS, "WAV", "PCM_16"), WAV, "too_short", "lasts 0.20 s"),
        (encoded(tone(FS, 3.0), FS, "WAV", "PCM_16"), WAV, "too_long", "at most 2.0 s"),
        (
            b"\x00\x01\x02",
            RecordingFormat(container="raw", sample_rate=FS, sample_format="s16le"),
            "undecodable",
            "2-byte frames",
        ),
    ],
    ids=[
        "garbage",
        "mislabelled",
        "rate",
        "nan",
        "silent",
        "clipped",
        "short",
        "long",
        "raw-bytes",
    ],
)
def test_unusable_recordings_are_refused_with_their_reason(
    data: bytes, declared: RecordingFormat, reason: str, message: str
) -> None:
    error = refused(data, declared)
    assert error.reason == reason
    assert message in str(error)


@pytest.mark.parametrize(
    "fields",
    [
        {"container": "raw", "sample_format": "s16le"},
        {"container": "raw", "sample_rate": FS},
        {"container": "wav", "sample_rate": FS},
        {"container": "flac", "channels": 2},
        {"container": "raw", "sample_rate": 4_000, "sample_format": "s16le"},
        {"container": "mp3"},
    ],
    ids=["raw-no-rate", "raw-no-format", "wav-rate", "flac-channels", "rate-range", "mp3"],
)
def test_a_format_declaration_that_cannot_hold_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RecordingFormat.model_validate(fields)


def test_a_recording_error_crosses_from_a_worker_process_whole() -> None:
    """Raised in an analysis worker, it is pickled back: reason and message intact."""
    import pickle

    error = pickle.loads(pickle.dumps(RecordingError("clipped", "a flat top at -0.1 dBFS")))
    assert (error.reason, str(error)) == ("clipped", "a flat top at -0.1 dBFS")
