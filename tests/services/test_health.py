"""Every service answers /livez, /readyz and /metrics; readiness follows its dependencies."""

from __future__ import annotations

import importlib

import httpx
import pytest

from sonalyze_storage.app import create_app as create_storage_app
from sonalyze_storage.settings import StorageSettings
from tests.conftest import TOKEN, free_port, serving
from tests.health import assert_healthy

PEERS = ["gateway", "lobby", "measurement", "simulation"]


def build(service: str, storage_url: str):
    app_module = importlib.import_module(f"sonalyze_{service}.app")
    settings_module = importlib.import_module(f"sonalyze_{service}.settings")
    settings_class = getattr(settings_module, f"{service.capitalize()}Settings")
    extra = {"device_token_secrets": ["a-device-token-secret"]} if service == "gateway" else {}
    settings = settings_class(storage_url=storage_url, internal_token=TOKEN, **extra)
    return app_module.create_app(settings)


def test_storage_is_healthy(storage_url: str, api: httpx.Client) -> None:
    assert_healthy(storage_url)
    api.get("/v1/lobbies/8f0e7c1a-0000-4000-8000-000000000000")
    metrics = httpx.get(f"{storage_url}/metrics").text
    assert 'sonalyze_storage_db_pool_connections{state="idle"}' in metrics
    # Requests are counted by route template, never by the ids in their paths.
    assert 'route="/v1/lobbies/{lobby_id}",service="storage",status="404"' in metrics
    assert "8f0e7c1a" not in metrics


@pytest.mark.parametrize("service", PEERS)
def test_service_is_healthy_with_storage_up(service: str, storage_url: str) -> None:
    with serving(build(service, storage_url)) as url:
        assert_healthy(url)
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == f"Sonalyze {service}"


@pytest.mark.parametrize("service", PEERS)
def test_service_is_alive_but_not_ready_without_storage(service: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with serving(build(service, dead)) as url:
        assert httpx.get(f"{url}/livez").status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unready"
        assert "unreachable" in ready.json()["checks"]["storage"]


def test_storage_is_not_ready_without_its_database(tmp_path) -> None:
    settings = StorageSettings(database_url=f"postgresql://nobody@/none?host={tmp_path}")
    with serving(create_storage_app(settings)) as url:
        assert httpx.get(f"{url}/livez").status_code == 200
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] != "ok"
        assert ready.json()["checks"]["event_notifier"] != "ok"
