"""Every service's OpenAPI document fuzzed by schemathesis, over real HTTP against the whole
stack on a real storage and Postgres: no 5xx, and every response (status, content type, headers,
body) as its operation documents it; requests that fit the schema are taken, and requests that
do not are refused.

The documents are read from apps built here (building an app starts nothing), so that pytest
knows every operation when it collects the tests; :func:`test_the_documents_are_the_published_ones`
shows that the running services publish exactly these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import Case
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

from sonalyze_gateway.app import create_app as create_gateway_app
from sonalyze_gateway.app import uvicorn_options
from sonalyze_gateway.settings import GatewaySettings
from sonalyze_lobby.app import create_app as create_lobby_app
from sonalyze_lobby.settings import LobbySettings
from sonalyze_measurement.app import create_app as create_measurement_app
from sonalyze_measurement.settings import MeasurementSettings
from sonalyze_simulation.app import create_app as create_simulation_app
from sonalyze_simulation.settings import SimulationSettings
from sonalyze_storage.app import create_app as create_storage_app
from sonalyze_storage.settings import StorageSettings
from tests.conftest import TOKEN, free_port, new_database, serving
from tests.gateway.conftest import ORIGIN, SECRET, wait_ready

SERVICES = ("storage", "lobby", "measurement", "simulation", "gateway")


# Schemathesis' defaults: what answers a request that fits its schema, and one that does not.
TAKEN = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]


def refused_as_well(method: str, path: str, *statuses: str) -> dict[str, Any]:
    """Operation config: a request that fits the schema may be refused with ``statuses`` too."""
    expected = [*TAKEN, *statuses]
    return {
        "include-name": f"{method} {path}",
        "checks": {"positive_data_acceptance": {"expected-statuses": expected}},
    }


CONFIG: dict[str, Any] = {
    # Postgres stores no NUL character (text or jsonb): storage refuses one with 422
    # (tests/storage/test_bad_input.py), which no schema of free-form JSON can say.
    "generation": {"max-examples": 50, "deterministic": True, "allow-x00": False},
    # A body over storage's size limit is refused with 413 before it is read, fitting or not.
    "checks": {"negative_data_rejection": {"expected-statuses": [*REFUSED, "413"]}},
    "operations": [
        # Storage's event stream never ends: each request reads it for at most a second.
        {"include-path": "/v1/events/stream", "request-timeout": 1, "max-stream-events": 2},
        # A chunk whose CRC32 is not its body's is refused (400): no schema can say so.
        refused_as_well("PUT", "/v1/blobs/{blob_id}/chunks/{index}", "400"),
        refused_as_well(
            "PUT", "/v1/measurements/{measurement_id}/recordings/{device_id}/chunks/{index}", "400"
        ),
        # Events need a lobby to go to: a rule across fields (422).
        refused_as_well("POST", "/v1/simulation-jobs", "422"),
        # A mistyped join code is refused with 400 naming the characters codes never contain.
        refused_as_well("POST", "/v1/lobbies/join", "400"),
        # A sweep the measurement cannot play (f1 above f2, fades longer than the sweep) is
        # refused with 400, a device for a room measurement with 422: rules across fields.
        refused_as_well("POST", "/v1/measurements", "400", "422"),
        # Raw PCM declares its rate and format, other containers none: a rule across fields.
        refused_as_well("POST", "/v1/measurements/{measurement_id}/recordings", "422"),
        # A room that cannot be simulated (a source outside it, a floor plan that crosses
        # itself, a surface the room does not have) is refused with 400 or 422.
        refused_as_well("POST", "/v1/simulations", "400", "422"),
    ],
}


def apps(urls: dict[str, str], database_url: str) -> dict[str, FastAPI]:
    """The five services, each on its peers at ``urls`` and storage on ``database_url``."""
    peers = {"storage_url": urls["storage"], "internal_token": TOKEN}
    gateway = GatewaySettings.model_validate(
        {
            **peers,
            "lobby_url": urls["lobby"],
            "measurement_url": urls["measurement"],
            "simulation_url": urls["simulation"],
            "device_token_secrets": [SECRET],
            "allowed_origins": [ORIGIN],
        }
    )
    return {
        "storage": create_storage_app(
            StorageSettings(
                database_url=database_url,
                internal_token=TOKEN,
                max_chunk_bytes=64 * 1024,
                max_blob_bytes=1024 * 1024,
                max_request_bytes=128 * 1024,
                stream_heartbeat_s=0.2,
            )
        ),
        "lobby": create_lobby_app(
            LobbySettings.model_validate({**peers, "measurement_url": urls["measurement"]})
        ),
        "measurement": create_measurement_app(
            MeasurementSettings.model_validate(
                {**peers, "lobby_url": urls["lobby"], "max_chunk_bytes": 64 * 1024}
            )
        ),
        "simulation": create_simulation_app(
            SimulationSettings.model_validate(
                {**peers, "job_deadline_s": 10, "worker_chunk_bytes": 64 * 1024}
            )
        ),
        "gateway": create_gateway_app(gateway),
    }


@pytest.fixture(scope="module")
def stack(postgres: str, template_db: str) -> Iterator[dict[str, str]]:
    """Base URLs of the five services, each on real HTTP, on one fresh database."""
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with new_database(postgres, template_db) as database_url, ExitStack() as running:
        for name, app in apps(urls, database_url).items():
            options = uvicorn_options(app.state.settings) if name == "gateway" else {}
            running.enter_context(serving(app, port=ports[name], **options))
        wait_ready(urls["gateway"])
        yield urls


UNUSED = "http://unused.invalid"
DOCUMENTS = {
    name: app.openapi()
    for name, app in apps(dict.fromkeys(SERVICES, UNUSED), "postgresql+psycopg://u/u").items()
}


def schema(name: str) -> OpenApiSchema:
    """The service's document to fuzz, calling with the internal token where it asks for it."""
    document = DOCUMENTS[name]
    config = dict(CONFIG)
    if "internalToken" in document.get("components", {}).get("securitySchemes", {}):
        config["auth"] = {"openapi": {"internalToken": {"bearer": TOKEN}}}
    return schemathesis.openapi.from_dict(document, config=SchemathesisConfig.from_dict(config))


def test_the_documents_are_the_published_ones(stack: dict[str, str]) -> None:
    for name in SERVICES:
        assert httpx.get(f"{stack[name]}/openapi.json").json() == DOCUMENTS[name], name


@schema("storage").parametrize()
def test_storage(case: Case[Any], stack: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack["storage"])


@schema("lobby").parametrize()
def test_lobby(case: Case[Any], stack: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack["lobby"])


@schema("measurement").parametrize()
def test_measurement(case: Case[Any], stack: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack["measurement"])


@schema("simulation").parametrize()
def test_simulation(case: Case[Any], stack: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack["simulation"])


@schema("gateway").parametrize()
def test_gateway(case: Case[Any], stack: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack["gateway"])
