"""Fixtures of the measurement tests: the service on the test's storage, restartable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import pytest

from sonalyze_measurement.app import create_app
from sonalyze_measurement.settings import MeasurementSettings
from sonalyze_storage.settings import StorageSettings
from tests.conftest import TOKEN, serving, with_room_for_audio
from tests.measurement.helpers import AUTH


@pytest.fixture
def storage_settings(storage_settings: StorageSettings) -> StorageSettings:
    """The shared test storage, with room for whole recordings."""
    return with_room_for_audio(storage_settings)


@pytest.fixture
def service(storage_url: str) -> Callable[..., AbstractContextManager[httpx.Client]]:
    """Start a measurement service on the test's storage (again, for a restart), with
    settings changed by keyword."""

    @contextmanager
    def start(**changes: object) -> Iterator[httpx.Client]:
        settings = MeasurementSettings.model_validate(
            {
                "storage_url": storage_url,
                "internal_token": TOKEN,
                "max_chunk_bytes": 64 * 1024,
                **changes,
            }
        )
        with serving(create_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH) as c:
            yield c

    return start


@pytest.fixture
def measurement(
    service: Callable[..., AbstractContextManager[httpx.Client]],
) -> Iterator[httpx.Client]:
    with service() as client:
        yield client
