"""The chart rendered offline by Helm's own engine (helm-python-sdk), as lists of objects."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import helm_python
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sonalyze"
SERVICES = ("gateway", "lobby", "measurement", "simulation", "storage")
WORKLOADS = ("Deployment", "StatefulSet", "Job")
# Value sets the tests render the chart with, beside the defaults.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "external database": {"database": {"url": "postgresql://u:p@db.example.org:5432/sonalyze"}},
    "existing secrets": {
        "database": {"existingSecret": "sonalyze-db", "existingSecretKey": "dsn"},
        "auth": {"internalTokenSecret": "internal", "deviceTokenSecret": "devices"},
    },
    "monitoring on": {
        "monitoring": {"serviceMonitor": {"enabled": True}, "dashboard": {"enabled": True}}
    },
    "ingress off": {"ingress": {"enabled": False}},
    "autoscaling on": {"gateway": {"autoscaling": {"enabled": True}}},
    "tls on": {
        "ingress": {
            "host": "sonalyze.example.org",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "tls": [{"hosts": ["sonalyze.example.org"], "secretName": "sonalyze-tls"}],
        }
    },
}


def render(
    values: dict[str, Any] | None = None, *, release: str = "sonalyze", namespace: str = "sonalyze"
) -> list[dict[str, Any]]:
    """Every object the chart renders with ``values`` over its defaults, hooks included (NOTES.txt
    is not an object: see :func:`notes`)."""
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=release, namespace=namespace, is_install=True)
    return [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def notes(values: dict[str, Any] | None = None, *, release: str = "sonalyze") -> str:
    """The NOTES.txt Helm prints after an install."""
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=release, namespace="sonalyze", is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The objects of one kind."""
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` called ``name``."""
    (found,) = [obj for obj in kinds(objects, kind) if obj["metadata"]["name"] == name]
    return found


def component(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` labelled as component ``name`` (whatever the release)."""
    (found,) = [
        obj
        for obj in kinds(objects, kind)
        if obj["metadata"]["labels"]["app.kubernetes.io/component"] == name
    ]
    return found


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """("Kind/name", pod template) of every workload."""
    return [
        (f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"])
        for obj in objects
        if obj["kind"] in WORKLOADS
    ]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    """A pod template's init containers, then its containers."""
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects ``labels``."""
    return all(labels.get(key) == value for key, value in selector.items())


def settings_class(service: str) -> type[BaseSettings]:
    """The settings class a service reads its SONALYZE_* environment with."""
    module = importlib.import_module(f"sonalyze_{service}.settings")
    found: type[BaseSettings] = getattr(module, f"{service.capitalize()}Settings")
    return found
