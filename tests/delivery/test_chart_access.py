"""Who may reach what in a rendered release: only the gateway from outside, the simulation
service's least privilege on the API, and NetworkPolicies that admit exactly the callers map,
which itself must be exactly how the services are wired to each other."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest

from sonalyze_simulation.kube_job import JobTemplate, build_job
from sonalyze_simulation.kube_runner import ROLE_RULES
from sonalyze_simulation.settings import SimulationSettings
from tests.delivery.chart import (
    VALUE_SETS,
    component,
    containers,
    kinds,
    named,
    pod_specs,
    render,
    selects,
)

# The most the issue allows the simulation service (jobs; pods; pods/log).
ALLOWED = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get"},
}
COMPONENT = "app.kubernetes.io/component"
# What the Ingress routes to the gateway, (path, pathType): the phone app's page, the join links
# its QR codes carry, its static files, and the API (WebSocket and downloads).
PUBLIC_ROUTES = [("/", "Exact"), ("/app/", "Prefix"), ("/j/", "Prefix"), ("/v1", "Prefix")]
Edge = tuple[str, str, int]  # caller, callee, port


# Each value set as release "sonalyze", and the default one as release "prod" too: names and
# the worker Jobs' labels follow the release.
RELEASES = [(name, "sonalyze") for name in VALUE_SETS] + [("default", "prod")]


@pytest.fixture(scope="module", params=RELEASES, ids=[f"{v} as {r}" for v, r in RELEASES])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    values, release = request.param
    return render(VALUE_SETS[values], release=release)


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def worker_job(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The Job the simulation service would create, built by its own code from the settings the
    chart gives it."""
    simulation = component(objects, "Deployment", "simulation")
    env = plain_env(simulation["spec"]["template"]["spec"]["containers"][0])
    with mock.patch.dict(os.environ, env):  # read as the service reads its environment
        settings = SimulationSettings()
    job = build_job(uuid.uuid4(), JobTemplate.from_settings(settings))
    from kubernetes.client import ApiClient

    serialized: dict[str, Any] = ApiClient().sanitize_for_serialization(job)
    return serialized


def component_of(objects: list[dict[str, Any]], url: str) -> tuple[str, int]:
    """The component a URL's host names (a Service of the release), and the URL's port."""
    parts = urlsplit(url)
    service = named(objects, "Service", parts.hostname or "")
    assert parts.port in {p["port"] for p in service["spec"]["ports"]}, url
    return service["spec"]["selector"][COMPONENT], parts.port or 0


def wiring(objects: list[dict[str, Any]]) -> set[Edge]:
    """Every call the release's pods are configured to make to each other, read from their
    settings: service URLs, the database URL, and the worker Jobs' storage URL."""
    callers = [
        (template["metadata"]["labels"][COMPONENT], container)
        for _, template in pod_specs(objects)
        for container in containers(template)
    ]
    worker = worker_job(objects)["spec"]["template"]
    callers.append((worker["metadata"]["labels"][COMPONENT], worker["spec"]["containers"][0]))
    if not kinds(objects, "Job"):
        # Offline, the migrations hook is left out while the release's Postgres does not exist
        # (test_chart.py); where it runs, it runs storage's init container's migrate.
        storage = component(objects, "Deployment", "storage")["spec"]["template"]["spec"]
        callers.append(("migrations", storage["initContainers"][0]))
    database = next(
        (s for s in kinds(objects, "Secret") if s["metadata"]["name"].endswith("-database")), None
    )
    services = {service["metadata"]["name"] for service in kinds(objects, "Service")}
    edges: set[Edge] = set()
    for caller, container in callers:
        urls = [v for k, v in plain_env(container).items() if k.endswith("_URL")]
        for e in container["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if e["name"] == "SONALYZE_DATABASE_URL" and database and ref["key"] in database["data"]:
                urls.append(base64.b64decode(database["data"][ref["key"]]).decode())
        for url in urls:
            if urlsplit(url).hostname in services:
                edges.add((caller, *component_of(objects, url)))
    return edges


def policy_edges(objects: list[dict[str, Any]]) -> tuple[set[Edge], set[Edge]]:
    """The calls between the release's pods that the NetworkPolicies admit, as seen from the
    callee's ingress rules and from the caller's egress rules."""
    admitted: set[Edge] = set()
    allowed_out: set[Edge] = set()
    for policy in kinds(objects, "NetworkPolicy"):
        own = policy["spec"]["podSelector"]["matchLabels"].get(COMPONENT)
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    caller = peer["podSelector"]["matchLabels"][COMPONENT]
                    admitted |= {(caller, own, p["port"]) for p in rule["ports"]}
        for rule in policy["spec"].get("egress", []):
            for peer in rule["to"]:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    callee = peer["podSelector"]["matchLabels"][COMPONENT]
                    allowed_out |= {(own, callee, p["port"]) for p in rule["ports"]}
    return admitted, allowed_out


def test_the_callers_map_is_exactly_how_the_services_are_wired(
    objects: list[dict[str, Any]],
) -> None:
    callers = {
        (caller, callee)
        for callee, names in render_values()["networkPolicy"]["callers"].items()
        for caller in names
    }
    wired = {(caller, callee) for caller, callee, _ in wiring(objects)}
    if not kinds(objects, "StatefulSet"):  # an external database: no postgres component
        callers = {(a, b) for a, b in callers if b != "postgres"}
    assert wired == callers


def test_network_policies_admit_exactly_the_callers_map(objects: list[dict[str, Any]]) -> None:
    admitted, allowed_out = policy_edges(objects)
    expected = wiring(objects)
    assert admitted == expected
    assert allowed_out == expected


def test_every_pod_is_denied_by_default_and_may_ask_dns(objects: list[dict[str, Any]]) -> None:
    release = objects[0]["metadata"]["labels"]["app.kubernetes.io/instance"]
    prefix = release if "sonalyze" in release else f"{release}-sonalyze"
    policies = {p["metadata"]["name"]: p["spec"] for p in kinds(objects, "NetworkPolicy")}
    deny = policies[f"{prefix}-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    dns = policies[f"{prefix}-dns"]
    assert [p["port"] for p in dns["egress"][0]["ports"]] == [53, 53]
    templates = [t for _, t in pod_specs(objects)] + [worker_job(objects)["spec"]["template"]]
    for template in templates:
        labels = template["metadata"]["labels"]
        assert selects(deny["podSelector"]["matchLabels"], labels)
        assert selects(dns["podSelector"]["matchLabels"], labels)
        own = [p for p in policies.values() if p["podSelector"]["matchLabels"].get(COMPONENT)]
        assert sum(selects(p["podSelector"]["matchLabels"], labels) for p in own) == 1


def test_only_the_gateway_is_reachable_from_outside(objects: list[dict[str, Any]]) -> None:
    for service in kinds(objects, "Service"):
        assert service["spec"]["type"] == "ClusterIP"
        assert "externalIPs" not in service["spec"]
    gateway_service = component(objects, "Service", "gateway")
    for ingress in kinds(objects, "Ingress"):
        paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
        assert sorted((path["path"], path["pathType"]) for path in paths) == PUBLIC_ROUTES
        for path in paths:
            assert path["backend"] == {
                "service": {"name": gateway_service["metadata"]["name"], "port": {"name": "http"}}
            }
        assert "http" in {port["name"] for port in gateway_service["spec"]["ports"]}
        # The app and the API only: not the gateway's /metrics, health or API docs.
        for request in ("/", "/j/K7QX2M", "/j/K7QX2M/", "/app/app.js", "/app/", "/v1/ws"):
            assert routed(request, paths), request
        for request in (
            "/metrics",
            "/readyz",
            "/livez",
            "/docs",
            "/docs/oauth2-redirect",
            "/redoc",
            "/openapi.json",
            "/index.html",
            "/join",
            "/application.js",
            "/v10/ws",
        ):
            assert not routed(request, paths), request
    monitoring = bool(kinds(objects, "ServiceMonitor"))
    for policy in kinds(objects, "NetworkPolicy"):
        own = policy["spec"]["podSelector"]["matchLabels"].get(COMPONENT)
        for rule in policy["spec"].get("ingress", []):
            outside = [p for p in rule["from"] if set(p) != {"podSelector"}]
            if outside and own != "gateway":
                # Only Prometheus, when monitoring is on, reaches the others (their /metrics).
                assert monitoring and outside == render_values()["networkPolicy"]["prometheus"]
    gateway = component(objects, "NetworkPolicy", "gateway")["spec"]
    from_outside = [r for r in gateway["ingress"] if r["from"][0].get("namespaceSelector")]
    assert len(from_outside) == bool(kinds(objects, "Ingress")) + monitoring


def routed(request: str, paths: list[dict[str, Any]]) -> bool:
    """Whether a request for the path ``request`` matches one of an Ingress's ``paths``, as
    Kubernetes defines it: Exact is the whole path; Prefix compares the elements between the
    slashes (``/j/`` matches ``/j`` and ``/j/ABC``, not ``/join``; ``/`` would match every path)."""
    elements = [e for e in request.split("/") if e]
    for path in paths:
        if path["pathType"] == "Exact" and request == path["path"]:
            return True
        prefix = [e for e in path["path"].split("/") if e]
        if path["pathType"] == "Prefix" and elements[: len(prefix)] == prefix:
            return True
        assert path["pathType"] in {"Exact", "Prefix"}, "ImplementationSpecific: the controller's"
    return False


def test_the_simulation_role_grants_the_runner_its_rules_and_nothing_more(
    objects: list[dict[str, Any]],
) -> None:
    assert kinds(objects, "ClusterRole") == kinds(objects, "ClusterRoleBinding") == []
    (role,) = kinds(objects, "Role")
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert set(rule["verbs"]) <= ALLOWED[(group, resource)], rule
    assert role["rules"] == ROLE_RULES
    (binding,) = kinds(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    (account,) = kinds(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "sonalyze"}
    ]
    simulation = component(objects, "Deployment", "simulation")["spec"]["template"]["spec"]
    assert simulation["serviceAccountName"] == account["metadata"]["name"]


def test_the_worker_jobs_get_the_release_s_image_token_and_labels(
    objects: list[dict[str, Any]],
) -> None:
    job = worker_job(objects)
    labels = job["spec"]["template"]["metadata"]["labels"]
    release = objects[0]["metadata"]["labels"]["app.kubernetes.io/instance"]
    assert labels["app.kubernetes.io/instance"] == release
    (container,) = job["spec"]["template"]["spec"]["containers"]
    simulation = component(objects, "Deployment", "simulation")
    assert container["image"] == simulation["spec"]["template"]["spec"]["containers"][0]["image"]
    token = next(e for e in container["env"] if e["name"] == "SONALYZE_INTERNAL_TOKEN")
    service_token = next(
        e
        for e in simulation["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "SONALYZE_INTERNAL_TOKEN"
    )
    assert token["valueFrom"] == service_token["valueFrom"]


def render_values() -> dict[str, Any]:
    """The chart's default values, as Helm merges them."""
    import helm_python

    from tests.delivery.chart import CHART

    with helm_python.Chart.load(CHART) as chart:
        return chart.merge_values({})
