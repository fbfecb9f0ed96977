"""What a measurement sends and receives: the sweep it plays and the recordings it takes in.

The sweep spec travels to every phone in ``measurement.started``; the recording format is what
a microphone declares before it uploads (the upload frames themselves are
:mod:`sonalyze.upload_frames`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sonalyze.domain import MeasurementState, RecordingState

# Sample rates a recording or a sweep may have, in Hz.
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
# A measurement plays its sweep at most MAX_REPEATS times, for at most MAX_SWEEPS_S together.
MAX_REPEATS = 8
MAX_SWEEPS_S = 60.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Container(StrEnum):
    """How a recording's bytes are encoded."""

    wav = "wav"  # RIFF/WAVE: PCM 16, 24 or 32 bit, or float32
    flac = "flac"
    ogg = "ogg"  # Ogg with Opus (or Vorbis): what browsers' MediaRecorder makes in Firefox
    raw = "raw"  # headerless interleaved PCM: sample_rate, sample_format and channels declared


class SampleFormat(StrEnum):
    """Raw PCM samples, little-endian and interleaved."""

    s16le = "s16le"
    s24le = "s24le"
    s32le = "s32le"
    f32le = "f32le"


class RecordingFormat(_Model):
    """The format a microphone declares for its recording."""

    container: Container
    sample_rate: int | None = Field(
        None, ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE, description="Hz; raw PCM only."
    )
    sample_format: SampleFormat | None = Field(None, description="Raw PCM only.")
    channels: int = Field(1, ge=1, le=8, description="Interleaved channels; raw PCM only.")

    @model_validator(mode="after")
    def _raw_declares_itself(self) -> Self:
        declared = self.sample_rate is not None or self.sample_format is not None
        if self.container == Container.raw:
            if self.sample_rate is None or self.sample_format is None:
                raise ValueError("raw PCM needs sample_rate and sample_format")
        elif declared or self.channels != 1:
            raise ValueError(
                f"{self.container.value} carries its own sample rate, format and channels: "
                "declare them for raw PCM only"
            )
        return self


class SweepSpec(_Model):
    """An exponential sine sweep as designed for a measurement, and its schedule.

    Phones play (speakers) and record (microphones) by it: the speakers play the sweep
    ``repeats`` times back to back, and the recording runs from ``lead_in`` before the first
    starts to ``tail`` after the last ends.
    """

    f1: float = Field(gt=0, description="Start frequency in Hz.")
    f2: float = Field(gt=0, description="End frequency in Hz.")
    duration: float = Field(gt=0, le=60, description="Length of the sweep in s.")
    sample_rate: int = Field(ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE)
    fade_in: float = Field(ge=0, description="Raised-cosine fade at the start, s.")
    fade_out: float = Field(ge=0, description="Raised-cosine fade at the end, s.")
    amplitude: float = Field(gt=0, le=1, description="Peak amplitude re full scale.")
    lead_in: float = Field(ge=0, le=10, description="Recording before the sweep starts, s.")
    tail: float = Field(ge=0, le=30, description="Recording after the sweep ends, s.")
    repeats: int = Field(
        1,
        ge=1,
        le=MAX_REPEATS,
        description="How many times the sweep is played, back to back: a repetition a noise "
        "burst disturbed is found and left out, the others averaged (3 dB less noise for "
        "each doubling).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.f1 < self.f2 <= self.sample_rate / 2:
            raise ValueError("need f1 < f2 <= sample_rate / 2")
        if self.fade_in + self.fade_out > self.duration:
            raise ValueError("the fades together must not be longer than the sweep")
        if self.repeats * self.duration > MAX_SWEEPS_S:
            raise ValueError(f"the repetitions together must last at most {MAX_SWEEPS_S:g} s")
        return self

    @property
    def recording_seconds(self) -> float:
        """How long each microphone records."""
        return self.lead_in + self.sweeps_seconds + self.tail

    @property
    def sweeps_seconds(self) -> float:
        """How long the speakers play: the sweep, ``repeats`` times."""
        return self.repeats * self.duration


# The measurement service's HTTP API (internal: the lobby and the gateway call it) -------------


class MeasurementKind(StrEnum):
    """What a measurement's recordings are."""

    room = "room"  # the lobby's microphones record the speakers' sweep, on schedule
    sweep_recording = "sweep_recording"  # one phone uploads a recording of a sweep it had
    impulse_response = "impulse_response"  # one phone uploads an impulse response


class StartMeasurement(_Model):
    lobby_id: UUID
    sweep: dict[str, Any] = Field(
        default_factory=dict, description="Changes to the default sweep (SweepSpec fields)."
    )
    kind: MeasurementKind = MeasurementKind.room
    device_id: UUID | None = Field(
        None, description="For a sweep recording or an impulse response: the phone uploading it."
    )

    @model_validator(mode="after")
    def _one_phone_uploads_outside_a_room_measurement(self) -> Self:
        if (self.kind == MeasurementKind.room) != (self.device_id is None):
            raise ValueError("device_id is given for, and only for, an upload outside a room")
        return self


class MeasurementStarted(_Model):
    """What every member of the lobby is told: the sweep, where to get it, and when."""

    measurement_id: UUID
    lobby_id: UUID
    kind: MeasurementKind = MeasurementKind.room
    sweep: SweepSpec
    sweep_path: str = Field(description="Path of the sweep WAV on the gateway.")
    start_at_ms: int = Field(
        description="Server time (ms since the epoch) the microphones start recording."
    )
    play_at_ms: int = Field(
        description="Server time (ms since the epoch) the speakers start playing the sweep: "
        "start_at_ms plus the sweep's lead_in (rounded to the ms)."
    )
    recording_seconds: float = Field(description="How long each microphone records.")
    microphones: list[UUID]
    speakers: list[UUID]

    @staticmethod
    def play_at(start_at_ms: int, sweep: SweepSpec) -> int:
        """When the sweep starts playing, for a recording that starts at ``start_at_ms``."""
        return start_at_ms + round(sweep.lead_in * 1000)

    @model_validator(mode="before")
    @classmethod
    def _from_an_older_service(cls, data: Any) -> Any:
        """A measurement service from before ``play_at_ms`` (met during a rolling upgrade)
        sends none: it is derived, as that service would have."""
        if not isinstance(data, dict) or "play_at_ms" in data:
            return data
        try:
            sweep = SweepSpec.model_validate(data["sweep"])
            return {**data, "play_at_ms": cls.play_at(int(data["start_at_ms"]), sweep)}
        except (KeyError, TypeError, ValueError):
            return data  # the fields' own validation says what is wrong

    @model_validator(mode="after")
    def _plays_after_the_lead_in(self) -> Self:
        if self.play_at_ms != self.play_at(self.start_at_ms, self.sweep):
            raise ValueError("play_at_ms must be start_at_ms plus the sweep's lead_in")
        return self


class BeginUpload(_Model):
    device_id: UUID
    format: RecordingFormat


class UploadStatus(_Model):
    """Where one microphone's upload stands; ``missing`` are the chunks to send (again)."""

    measurement_id: UUID
    device_id: UUID
    recording_id: UUID
    state: RecordingState
    received: int
    expected_chunks: int | None = Field(description="Known once the final chunk came.")
    missing: list[int]
    error: str | None = Field(description="Why the recording cannot be used (state invalid).")


class ChunkAck(_Model):
    """The answer to one chunk: ``created`` is false for a chunk already stored."""

    measurement_id: UUID
    device_id: UUID
    index: int
    created: bool
    state: RecordingState = Field(description="complete or invalid once the last chunk came.")
    error: str | None = None


class MeasurementStatus(_Model):
    measurement_id: UUID
    state: MeasurementState
    recordings: list[UploadStatus]
    waiting_for: list[UUID] = Field(description="Microphones that have not begun to upload.")
