"""Run a simulation request: pyroomacoustics' impulse responses, analysed per octave band by
:mod:`sonalyze.acoustics` exactly as a measurement's are, averaged over the receivers, beside
Sabine's and Eyring's predictions for the same room."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sonalyze.acoustics import band_edges, room_parameters, spatial_average
from sonalyze.simulation_api import OCTAVE_BANDS, SimulationRequest
from sonalyze_simulation.rooms import build, plan

Progress = Callable[[float, str], None]


def bands_for(sample_rate: int) -> list[int]:
    """The octave bands (of the materials' 125 Hz-4 kHz) below half the sample rate."""
    return [b for b in OCTAVE_BANDS if band_edges(b, 1)[1] < sample_rate / 2]


def simulate(
    request: SimulationRequest, progress: Progress = lambda done, what: None
) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    """The result (JSON-ready) and the impulse responses, by receiver then source."""
    how = plan(request)
    progress(0.05, how.why)
    room = build(request, how)
    room.compute_rir()
    progress(0.6, "impulse responses computed")
    bands = bands_for(request.sample_rate)
    indexes = [OCTAVE_BANDS.index(b) for b in bands]
    responses: list[list[np.ndarray]] = []
    pairs = []
    for r, per_source in enumerate(room.rir):
        responses.append([np.asarray(ir, dtype=float) for ir in per_source])
        for s, ir in enumerate(responses[-1]):
            parameters = room_parameters(ir, request.sample_rate, bands)
            pairs.append(
                {
                    "source": s,
                    "receiver": r,
                    "seconds": ir.size / request.sample_rate,
                    **parameters.to_json(),
                }
            )
        progress(0.6 + 0.4 * (r + 1) / len(room.rir), f"receiver {r + 1} analysed")
    result = {
        "bands": bands,
        "method": {"image_source_order": how.order, "ray_tracing": how.ray_tracing, "why": how.why},
        "volume": how.volume,
        "surfaces": {s: {"area": a, "absorption": how.absorption[s]} for s, a in how.areas.items()},
        "sabine": [how.sabine[i] for i in indexes],
        "eyring": [how.eyring[i] for i in indexes],
        "average": spatial_average(pairs, len(bands)),
        "responses": pairs,
    }
    return result, responses


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the per-surface and per-pair detail, for the lobby's event."""
    return {k: v for k, v in result.items() if k not in ("surfaces", "responses")}
