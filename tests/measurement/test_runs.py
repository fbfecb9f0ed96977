"""The analysis run's worker pool: a worker that dies (out of memory, say) is replaced, and the
recording it was given is analysed in the new pool."""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile
from prometheus_client import CollectorRegistry
from scipy.signal import fftconvolve

from sonalyze.events import MicrophoneResult
from sonalyze.lobby_client import LobbyClient
from sonalyze.storage_client import StorageClient
from sonalyze_measurement.measurement_metrics import MeasurementMetrics
from sonalyze_measurement.runs import AnalysisRuns
from sonalyze_measurement.sweeps import design, render
from tests.measurement.test_analysis import room

SWEEP = design(duration=1.0, lead_in=0.5, tail=1.5)


def recording() -> bytes:
    played = np.concatenate([np.zeros(int(0.5 * 48_000)), render(SWEEP).signal])
    heard = fftconvolve(played, room(0))
    heard = 0.4 * heard / np.max(np.abs(heard)) + 1e-4 * np.random.default_rng(0).random(heard.size)
    buffer = io.BytesIO()
    soundfile.write(buffer, heard, 48_000, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_a_pool_whose_worker_died_is_replaced_and_the_recording_analysed() -> None:
    pools: list[ProcessPoolExecutor] = []

    def new_pool() -> ProcessPoolExecutor:
        pools.append(ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")))
        return pools[-1]

    async def scenario() -> tuple[MicrophoneResult, bytes]:
        async with (
            StorageClient("http://127.0.0.1:9") as storage,
            LobbyClient("http://127.0.0.1:9") as lobbies,
        ):
            runs = AnalysisRuns(storage, lobbies, new_pool, MeasurementMetrics(CollectorRegistry()))
            pools[0].submit(int).result()  # the worker exists...
            for pid in list(pools[0]._processes):
                os.kill(pid, signal.SIGKILL)
            try:
                return await runs._in_worker(
                    recording(), {"container": "wav"}, SWEEP.model_dump(mode="json")
                )
            finally:
                await runs.close()

    result, wav = asyncio.run(scenario())
    assert len(pools) == 2
    assert result.flags == []
    assert len(result.parameters.T30) == 7
    assert soundfile.info(io.BytesIO(wav)).subtype == "FLOAT", "the response, beside it"
