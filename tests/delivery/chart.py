"""The chart rendered offline by Helm's own engine (helm-python-sdk), as lists of objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "sonalyze"
SERVICES = ("gateway", "lobby", "measurement", "simulation", "storage")


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
