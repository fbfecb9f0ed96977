"""The Grafana dashboard the chart ships (``charts/sonalyze/dashboards/sonalyze.json``).

Its layout and queries are checked offline: every PromQL expression parses (with promql-parser,
and with the real promtool when the machine has it), every series is filtered by the dashboard's
namespace variable, and every metric it selects is one the services really export, read from the
``/metrics`` of each service started for the test.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import serving
from tests.delivery.chart import CHART, SERVICES
from tests.services.test_health import build

DASHBOARD = CHART / "dashboards" / "sonalyze.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NAMESPACE_MATCHER = 'namespace=~"$namespace"'

# What Grafana puts in place of its variables before it sends a query: values that parse and that
# a real query could carry.
VARIABLES = {
    "namespace": ".*",
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")

# The sample names a metric family of each type exposes (OpenMetrics types; the Prometheus text
# parser gives counter families without their ``_total``).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
    "untyped": ("",),
}

# The areas the issue asks the dashboard to show, each as the panels (by title) that show it and
# a metric each of those panels must select.
AREAS: dict[str, list[tuple[str, str]]] = {
    "connections": [("WebSocket connections", "sonalyze_ws_connections")],
    "message rates": [
        ("Messages received by type", "sonalyze_ws_messages_received_total"),
        ("Messages sent by type", "sonalyze_ws_messages_sent_total"),
    ],
    "fan-out latency": [("Fan-out latency", "sonalyze_ws_fanout_latency_seconds_bucket")],
    "upload throughput": [
        ("Upload throughput", "sonalyze_measurement_upload_bytes_total"),
        ("Upload chunks by outcome", "sonalyze_measurement_upload_chunks_total"),
    ],
    "analysis durations": [
        ("Analysis durations", "sonalyze_measurement_analysis_duration_seconds_bucket")
    ],
    "simulation durations": [
        ("Simulation durations", "sonalyze_simulation_run_duration_seconds_bucket"),
        ("Simulation durations", "sonalyze_simulation_queue_duration_seconds_bucket"),
    ],
    "job outcomes": [
        ("Simulation job outcomes and retries", "sonalyze_simulation_jobs_total"),
        ("Analysis outcomes", "sonalyze_measurement_analyses_total"),
    ],
    "error rates": [
        ("HTTP 5xx ratio by service", "sonalyze_http_requests_total"),
        ("WebSocket errors", "sonalyze_ws_rejected_total"),
        ("WebSocket errors", "sonalyze_ws_rate_limited_total"),
        ("WebSocket errors", "sonalyze_ws_slow_consumer_disconnects_total"),
        ("Failed work", "sonalyze_measurement_upload_chunks_total"),
        ("Failed work", "sonalyze_measurement_analyses_total"),
        ("Failed work", "sonalyze_simulation_jobs_total"),
    ],
}


@functools.cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> Iterator[dict[str, Any]]:
    """Every panel, the panels of collapsed rows included."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graphs() -> list[dict[str, Any]]:
    """The panels that query (every panel but the rows)."""
    return [panel for panel in panels() if panel["type"] != "row"]


def queries() -> Iterator[tuple[str, str]]:
    """(where, expression) of every target."""
    for panel in graphs():
        for target in panel["targets"]:
            yield f"{panel['title']!r} {target['refId']}", target["expr"]


def substitute(expr: str, **values: str) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would (``values`` over
    :data:`VARIABLES`); a variable the dashboard does not define fails the test."""
    known = {**VARIABLES, **values}

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in known, f"unknown Grafana variable ${name} in {expr}"
        return known[name]

    return VARIABLE.sub(value, expr)


def selectors(expr: str, **values: str) -> list[promql_parser.VectorSelector]:
    """Every series selector of ``expr`` (those inside range selectors included)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            found.append(node.vector_selector)
        elif isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(substitute(expr, **values)), visit)
    return found


def metric_names(expr: str) -> set[str]:
    names = {selector.name for selector in selectors(expr)}
    assert None not in names, f"a selector without a metric name in {expr}"
    return {name for name in names if name is not None}


def variable(name: str) -> dict[str, Any]:
    return next(v for v in dashboard()["templating"]["list"] if v["name"] == name)


def namespace_metric() -> str:
    """The metric the namespace variable reads its values from."""
    query = variable("namespace")["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = re.fullmatch(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*namespace\s*\)", text)
    assert match, f"the namespace variable's query is not label_values(<metric>, namespace): {text}"
    return match[1]


def used_metrics() -> set[str]:
    return {namespace_metric()}.union(*(metric_names(expr) for _, expr in queries()))


def sample_names(exposition: str) -> set[str]:
    """The names of the samples the families of a ``/metrics`` text can expose (a labelled
    family with no observations yet still has its HELP and TYPE lines)."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(exposition)
        for suffix in SUFFIXES[family.type]
    }


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] == "sonalyze-overview"
    assert board["title"] == "Sonalyze"
    assert "sonalyze" in board["tags"]
    assert board["schemaVersion"] >= 36
    assert board["time"] == {"from": "now-1h", "to": "now"}
    assert board["refresh"] == "30s"
    assert board.get("id") is None  # provisioned dashboards get their id from Grafana
    source = variable("datasource")
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    namespace = variable("namespace")
    assert namespace["type"] == "query"
    assert namespace["datasource"] == DATASOURCE


def test_panels_have_unique_ids_units_and_a_layout_without_overlaps() -> None:
    every = list(panels())
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in every:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']!r} is wider than the grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']!r} overlaps {other!r}"
    for panel in graphs():
        assert panel["targets"], f"{panel['title']!r} has no query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']!r} has no unit"
        assert panel.get("description"), f"{panel['title']!r} has no description"


def test_every_query_uses_the_datasource_variable() -> None:
    for panel in graphs():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{panel['title']!r} repeats a refId"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, f"{panel['title']!r} {target['refId']}"
            assert target.get("expr", "").strip(), f"{panel['title']!r} {target['refId']}"


def test_every_expression_parses() -> None:
    failures = []
    for where, expr in queries():
        try:
            promql_parser.parse(substitute(expr))
        except ValueError as error:
            failures.append(f"{where}: {error}\n    {expr}")
    assert not failures, "\n".join(failures)


def test_every_series_is_filtered_by_the_namespace_variable() -> None:
    marker = "namespace-variable"
    for where, expr in queries():
        assert NAMESPACE_MATCHER in expr, where
        for selector in selectors(expr, namespace=marker):
            assert any(
                (m.name, m.value) == ("namespace", marker) and m.op == promql_parser.MatchOp.Re
                for m in selector.matchers.matchers
            ), f"{where}: {selector} is not filtered by namespace"


def test_the_panels_cover_every_area_the_issue_names() -> None:
    titles: dict[str, set[str]] = {}
    for panel in graphs():
        names = titles.setdefault(panel["title"], set())
        for target in panel["targets"]:
            names |= metric_names(target["expr"])
    for area, shown_by in AREAS.items():
        for title, metric in shown_by:
            assert title in titles, f"{area}: no panel {title!r}"
            assert metric in titles[title], f"{area}: {title!r} does not query {metric}"


def test_every_metric_the_dashboard_uses_is_exported(storage_url: str) -> None:
    exported: dict[str, set[str]] = {"storage": sample_names(_scrape(storage_url))}
    for service in SERVICES:
        if service != "storage":
            with serving(build(service, storage_url)) as url:
                exported[service] = sample_names(_scrape(url))
    for service, names in exported.items():
        # Each scrape really is a Sonalyze service's: its request metrics and process metrics.
        assert "sonalyze_http_requests_total" in names, service
        assert "sonalyze_process_cpu_seconds_total" in names, service
    missing = used_metrics() - set().union(*exported.values())
    assert not missing, f"the dashboard uses metrics no service exports: {sorted(missing)}"


def _scrape(url: str) -> str:
    response = httpx.get(f"{url}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def promtool() -> str:
    """The promtool binary: ``$PROMTOOL``, the one on PATH, or Debian's, fetched once with
    ``apt-get download prometheus`` into ``~/.cache/sonalyze-tools``; skips the test when none
    can be had."""
    configured = os.environ.get("PROMTOOL")
    if configured:
        if not Path(configured).is_file():
            pytest.skip(f"PROMTOOL names no file: {configured}")
        return configured
    found = shutil.which("promtool")
    if found is not None:
        return found
    cache = Path.home() / ".cache" / "sonalyze-tools"
    binary = cache / "usr" / "bin" / "promtool"
    if not binary.is_file() and shutil.which("apt-get") and shutil.which("dpkg"):
        with tempfile.TemporaryDirectory() as download:
            command = ["apt-get", "download", "prometheus"]
            fetched = subprocess.run(command, cwd=download, capture_output=True, timeout=300)
            for deb in Path(download).glob("prometheus_*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(cache)], check=True, timeout=120)
        if not binary.is_file():
            pytest.skip(f"no promtool: apt-get download prometheus said {fetched.stderr!r}")
    if not binary.is_file():
        pytest.skip("no promtool on PATH, and no apt-get to fetch Debian's (set PROMTOOL)")
    return str(binary)


def test_promtool_accepts_every_expression(tmp_path: Path) -> None:
    binary = promtool()
    rules = [
        {"record": f"sonalyze_dashboard:query_{number}", "expr": substitute(expr)}
        for number, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout, checked.stdout
