"""The sweep a measurement plays: defaults that suit phones, and the sweep rendered from a spec.

Defaults (:data:`DEFAULT_SWEEP`), for phone speakers and microphones in ordinary rooms:

- 50 Hz to 16 kHz: the octave bands 125 Hz-8 kHz reach from 88 Hz to 11.3 kHz, and the sweep
  covers them with half an octave to spare at both ends; phone speakers give little below
  200 Hz, but what they give there is measured rather than cut off.
- 10 s: each doubling of the length buys 3 dB of peak-to-noise ratio, and T30 needs 45 dB of
  decay above the noise; longer sweeps would suffer more from the phones' clocks running at
  slightly different rates.
- 48 kHz, the native rate of phone audio.
- -6 dBFS peak, so that a phone speaker's limiter stays out of the way; 50 ms fade-in against
  a click at the start, 20 ms fade-out.
- played once (``repeats``: more repetitions find a noise burst and average the noise down,
  at the cost of time and of the phones' clocks drifting further apart);
- 1 s recorded before the sweep (margin for the phones' clock sync, and the room's noise on
  its own) and 3 s after it (the decay of a room with a reverberation time up to about 2.5 s,
  then its noise floor).
"""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import soundfile

from sonalyze.acoustics import Sweep, exponential_sweep
from sonalyze.measurement_api import SweepSpec

DEFAULT_SWEEP = SweepSpec(
    f1=50.0,
    f2=16_000.0,
    duration=10.0,
    sample_rate=48_000,
    fade_in=0.05,
    fade_out=0.02,
    amplitude=0.5,
    lead_in=1.0,
    tail=3.0,
)


def design(**changes: Any) -> SweepSpec:
    """:data:`DEFAULT_SWEEP` with some fields changed, validated as a whole (a pydantic
    ``ValidationError`` names the field and the reason)."""
    return SweepSpec.model_validate(DEFAULT_SWEEP.model_dump() | changes)


def render(spec: SweepSpec) -> Sweep:
    """The sweep's samples, as every speaker plays them and the analysis divides by."""
    return exponential_sweep(
        spec.f1,
        spec.f2,
        spec.duration,
        spec.sample_rate,
        fade_in=spec.fade_in,
        fade_out=spec.fade_out,
        amplitude=spec.amplitude,
    )


@functools.lru_cache(maxsize=16)
def wav(spec: SweepSpec) -> bytes:
    """What the speakers play as a 24-bit WAV file: the sweep ``repeats`` times, back to back
    (the last few specs' files are kept: every speaker of a measurement asks for the same
    one)."""
    buffer = io.BytesIO()
    played = np.tile(render(spec).signal, spec.repeats)
    soundfile.write(buffer, played, spec.sample_rate, format="WAV", subtype="PCM_24")
    return buffer.getvalue()
