"""The Helm chart, linted by Helm's own engine and rendered with several value sets: every object
valid for Kubernetes 1.30, selectors that select, hardened pods, and the value sets doing what
they say."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from tests.delivery.chart import (
    CHART,
    SERVICES,
    VALUE_SETS,
    containers,
    kinds,
    named,
    notes,
    pod_specs,
    render,
    selects,
    settings_class,
)

# Kinds that are not built into Kubernetes, so have no schema in kubernetes-validate.
CUSTOM = {"ServiceMonitor"}


@pytest.fixture(scope="module", params=list(VALUE_SETS), ids=list(VALUE_SETS))
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(VALUE_SETS[request.param])


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_strict_finds_nothing(name: str) -> None:
    report = helm_python.lint(CHART, VALUE_SETS[name], strict=True, kube_version="v1.30.0")
    # Severity 1 is information ("icon is recommended"); 2 and 3 are warnings and errors.
    assert [m for m in report["messages"] if m["severity"] > 1] == [], report
    assert report["errors"] == []


def test_every_object_is_valid_for_kubernetes_1_30(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] not in CUSTOM:
            kubernetes_validate.validate(obj, "1.30", strict=True)


def test_every_object_carries_the_recommended_labels(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "sonalyze"
        assert labels["app.kubernetes.io/instance"] == "sonalyze"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/component"]
        assert labels["app.kubernetes.io/version"] == labels["helm.sh/chart"].split("-")[-1]


def test_names_are_unique_per_kind(objects: list[dict[str, Any]]) -> None:
    keys = [(obj["kind"], obj["metadata"]["name"]) for obj in objects]
    assert len(keys) == len(set(keys))


def test_selectors_match_their_pods(objects: list[dict[str, Any]]) -> None:
    pods = {name: template["metadata"]["labels"] for name, template in pod_specs(objects)}
    for obj in kinds(objects, "Deployment") + kinds(objects, "StatefulSet"):
        selector = obj["spec"]["selector"]["matchLabels"]
        assert selects(selector, obj["spec"]["template"]["metadata"]["labels"])
        # ... and no other workload's pods.
        owner = f"{obj['kind']}/{obj['metadata']['name']}"
        assert [n for n, labels in pods.items() if selects(selector, labels)] == [owner]
    for service in kinds(objects, "Service"):
        selected = [n for n, labels in pods.items() if selects(service["spec"]["selector"], labels)]
        assert len(selected) == 1, (service["metadata"]["name"], selected)
        template = dict(pod_specs(objects))[selected[0]]
        ports = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for pdb in kinds(objects, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert [n for n, labels in pods.items() if selects(selector, labels)] == [
            "Deployment/sonalyze-gateway"
        ]


def test_every_port_names_its_protocol(objects: list[dict[str, Any]]) -> None:
    for obj in kinds(objects, "Service"):
        assert all(port["protocol"] == "TCP" for port in obj["spec"]["ports"])
    for _, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            assert all(port["protocol"] == "TCP" for port in container.get("ports", []))


def test_every_pod_is_hardened(objects: list[dict[str, Any]]) -> None:
    for name, template in pod_specs(objects):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        for container in containers(template):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            assert not any("hostPort" in port for port in container.get("ports", [])), name


def test_only_the_simulation_service_gets_an_api_token(objects: list[dict[str, Any]]) -> None:
    for name, template in pod_specs(objects):
        expected = name == "Deployment/sonalyze-simulation"
        assert template["spec"]["automountServiceAccountToken"] is expected, name


def test_every_service_is_probed_on_its_health_endpoints(objects: list[dict[str, Any]]) -> None:
    deployments = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in kinds(objects, "Deployment")
    }
    assert set(deployments) == set(SERVICES)
    for service, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"].endswith(f"/sonalyze-{service}:0.1.0")
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        env = {e["name"]: e for e in container["env"]}
        assert env["SONALYZE_HOST"]["value"] == "0.0.0.0"
        assert env["SONALYZE_PORT"]["value"] == str(container["ports"][0]["containerPort"])
        assert env["SONALYZE_LOG_FORMAT"]["value"] == "json"
        assert "secretKeyRef" in env["SONALYZE_INTERNAL_TOKEN"]["valueFrom"]


def secret_refs(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for _, template in pod_specs(objects)
        for container in containers(template)
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_every_secret_a_pod_reads_is_rendered_unless_it_is_the_operators() -> None:
    for name, values in VALUE_SETS.items():
        objects = render(values)
        secrets = {s["metadata"]["name"]: s["data"] for s in kinds(objects, "Secret")}
        external = {"sonalyze-db", "internal", "devices"}
        for secret, key in secret_refs(objects):
            assert secret in external or key in secrets.get(secret, {}), (name, secret, key)


def test_the_database_is_in_the_release_unless_an_external_one_is_given() -> None:
    inside = render()
    (postgres,) = kinds(inside, "StatefulSet")
    claim = postgres["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert set(named(inside, "Secret", "sonalyze-database")["data"]) == {"password", "url"}

    for name in ("external database", "existing secrets"):
        objects = render(VALUE_SETS[name])
        assert kinds(objects, "StatefulSet") == []
        assert "sonalyze-postgres" not in {s["metadata"]["name"] for s in kinds(objects, "Service")}
    refs = secret_refs(render(VALUE_SETS["existing secrets"]))
    assert ("sonalyze-db", "dsn") in refs
    assert ("internal", "token") in refs and ("devices", "secrets") in refs


def test_the_schema_is_migrated_before_storage_serves_and_before_every_upgrade() -> None:
    storage = named(render(), "Deployment", "sonalyze-storage")["spec"]["template"]["spec"]
    (migrate,) = storage["initContainers"]
    assert migrate["args"] == ["migrate", "--wait-s", "300"]
    assert migrate["image"] == storage["containers"][0]["image"]
    # Offline, the release's Postgres does not exist yet (as at install, or on the upgrade that
    # moves to it): no hook, the init container migrates. With a running database, a hook Job
    # migrates the one the upgrade configures; tests/delivery/test_chart_apiserver.py shows it.
    assert kinds(render(), "Job") == []
    objects = render(VALUE_SETS["external database"])
    (job,) = kinds(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate", "--wait-s", "60"]
    assert container["image"] == migrate["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    hook_secret = named(objects, "Secret", ref["name"])
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0


def test_generated_credentials_outlive_the_release() -> None:
    """An uninstall keeps them: a reinstall finds the database volume's password, and devices
    keep their tokens."""
    for secret in kinds(render(), "Secret"):
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    external = named(render(VALUE_SETS["external database"]), "Secret", "sonalyze-database")
    assert "annotations" not in external["metadata"], "the operator's URL is not ours to keep"


def test_the_ingress_reaches_the_gateway_with_long_websocket_timeouts() -> None:
    for values in ({}, VALUE_SETS["tls on"]):
        (ingress,) = kinds(render(values), "Ingress")
        annotations = ingress["metadata"]["annotations"]
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert kinds(render(VALUE_SETS["ingress off"]), "Ingress") == []
    # Which paths it routes, and which not: test_chart_access, for every value set.


def test_with_tls_the_ingress_serves_the_host_over_https() -> None:
    values = VALUE_SETS["tls on"]
    host = values["ingress"]["host"]
    (ingress,) = kinds(render(values), "Ingress")
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "sonalyze-tls"}]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert "tls" not in kinds(render(), "Ingress")[0]["spec"]


def test_notes_give_the_app_s_address_https_or_a_warning() -> None:
    """Phones' browsers give a page the microphone only over https."""
    warning = "the microphone only over https"
    text = notes(VALUE_SETS["tls on"])
    assert "\n  https://sonalyze.example.org/\n" in text
    assert "https://sonalyze.example.org/j/<code>" in text
    assert "wss://sonalyze.example.org/v1/ws" in text
    assert warning not in text and "http://" not in text and "ws://" not in text
    text = notes()  # no host, no TLS
    assert "\n  http://<the ingress controller's address>/\n" in text
    assert "ws://<the ingress controller's address>/v1/ws" in text
    assert warning in text
    text = notes({"ingress": {"host": "sonalyze.example.org"}})
    assert "\n  http://sonalyze.example.org/\n" in text and warning in text
    # A certificate's host, when the Ingress answers every host.
    tls = VALUE_SETS["tls on"]["ingress"]["tls"]
    assert "\n  https://sonalyze.example.org/\n" in notes({"ingress": {"tls": tls}})
    text = notes(VALUE_SETS["ingress off"])
    assert "port-forward service/sonalyze-gateway 8000:8000" in text
    assert "http://127.0.0.1:8000/ " in text and "phones need an https address" in text


def test_notes_name_other_origins_only_when_some_are_allowed() -> None:
    """The gateway's own pages may always open the WebSocket; allowedOrigins is for others."""
    assert "allowedOrigins" not in notes()
    text = notes({"gateway": {"allowedOrigins": ["https://app.example.org"]}})
    assert "(gateway.allowedOrigins): https://app.example.org" in text


def test_the_gateway_autoscaler_replaces_the_fixed_replica_count() -> None:
    objects = render(VALUE_SETS["autoscaling on"])
    (hpa,) = kinds(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sonalyze-gateway"
    assert "replicas" not in named(objects, "Deployment", "sonalyze-gateway")["spec"]
    assert kinds(render(), "HorizontalPodAutoscaler") == []


def test_monitoring_is_off_by_default_and_covers_every_service_when_on() -> None:
    assert {"ServiceMonitor", "ConfigMap"}.isdisjoint(o["kind"] for o in render())
    objects = render(VALUE_SETS["monitoring on"])
    (monitor,) = kinds(objects, "ServiceMonitor")
    selector = monitor["spec"]["selector"]
    scraped = [
        s["metadata"]["name"]
        for s in kinds(objects, "Service")
        if selects(selector["matchLabels"], s["metadata"]["labels"])
        and s["metadata"]["labels"]["app.kubernetes.io/component"]
        in selector["matchExpressions"][0]["values"]
        and {p["name"] for p in s["spec"]["ports"]} >= {monitor["spec"]["endpoints"][0]["port"]}
    ]
    assert sorted(scraped) == [f"sonalyze-{s}" for s in sorted(SERVICES)]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    (dashboard,) = kinds(objects, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "sonalyze.json").read_text())
    assert json.loads(dashboard["data"]["sonalyze.json"]) == shipped


@pytest.mark.parametrize("release", ["sonalyze", "prod", "a-long-release-name-for-staging-eu-1"])
def test_every_setting_the_chart_gives_is_one_the_service_reads(
    release: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings ignore unknown names, so a misspelt one would pass silently: every SONALYZE_*
    name must be a field of the service's settings, and every value must parse."""
    secret = {
        "SONALYZE_INTERNAL_TOKEN": "a-token",
        "SONALYZE_DEVICE_TOKEN_SECRETS": '["a-secret"]',
        "SONALYZE_DATABASE_URL": "postgresql://u:p@db/s",
    }
    for deployment in kinds(render(release=release), "Deployment"):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        reads = settings_class(service)
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        variables = [e for c in containers(template) for e in c["env"]]
        with monkeypatch.context() as env:
            for var in variables:
                name = var["name"]
                assert name.removeprefix("SONALYZE_").lower() in reads.model_fields, name
                env.setenv(name, var.get("value", secret.get(name, "")))
            settings = reads()
        assert settings.port == container["ports"][0]["containerPort"]


def test_names_fit_kubernetes_limits_for_a_long_release_name() -> None:
    objects = render(release="a-rather-long-release-name-for-the-staging-cluster-eu-west-1")
    for obj in objects:
        limit = 52 if obj["kind"] == "StatefulSet" else 63  # its pods' revision label
        assert len(obj["metadata"]["name"]) <= limit, obj["metadata"]["name"]


def test_whole_numbers_stay_whole() -> None:
    """Helm reads numbers as floats; a million must not reach a service as 1e+06."""
    values = {
        "simulation": {"worker": {"ttlSecondsAfterFinished": 1_000_000}},
        "services": {"storage": {"env": {"SONALYZE_MAX_BLOB_BYTES": 536_870_912}}},
    }
    objects = render(values)
    env = {
        e["name"]: e.get("value")
        for d in kinds(objects, "Deployment")
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["SONALYZE_KUBE_TTL_S"] == "1000000"
    assert env["SONALYZE_MAX_BLOB_BYTES"] == "536870912"


def test_the_gateway_knows_the_names_the_ingress_serves_the_app_under() -> None:
    def app_hosts(values: dict[str, Any]) -> list[str]:
        gateway = named(render(values), "Deployment", "sonalyze-gateway")
        env = gateway["spec"]["template"]["spec"]["containers"][0]["env"]
        (value,) = [e["value"] for e in env if e["name"] == "SONALYZE_APP_HOSTS"]
        return list(json.loads(value))

    assert app_hosts({}) == []
    assert app_hosts(VALUE_SETS["tls on"]) == ["sonalyze.example.org"]
    tls = [{"hosts": ["*.example.org", "sonalyze.example.org"], "secretName": "s"}]
    values = {"ingress": {"host": "sonalyze.example.org", "tls": tls}}
    assert app_hosts(values) == ["sonalyze.example.org", "*.example.org"]


def test_the_gateway_believes_forwarded_addresses_from_behind_the_ingress_only() -> None:
    def trusted(values: dict[str, Any]) -> list[str]:
        gateway = named(render(values), "Deployment", "sonalyze-gateway")
        env = gateway["spec"]["template"]["spec"]["containers"][0]["env"]
        (value,) = [e["value"] for e in env if e["name"] == "SONALYZE_TRUSTED_PROXIES"]
        return list(json.loads(value))

    assert "10.0.0.0/8" in trusted({})
    assert trusted({"gateway": {"trustedProxies": ["10.244.0.0/16"]}}) == ["10.244.0.0/16"]
    assert trusted({"ingress": {"enabled": False}}) == []


def test_a_services_env_overrides_a_setting_once() -> None:
    objects = render({"services": {"gateway": {"env": {"SONALYZE_LOG_LEVEL": "debug"}}}})
    gateway = named(objects, "Deployment", "sonalyze-gateway")
    env = gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "SONALYZE_LOG_LEVEL"] == ["debug"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"services": {"gateway": {"port": "8000"}}}, "/services/gateway/port"),
        (
            {"services": {"lobby": {"env": {"LOG_LEVEL": "debug"}}}},
            "'/services/lobby/env': additional properties 'LOG_LEVEL'",
        ),
        ({"services": {"cache": {}}}, "additional properties 'cache' not allowed"),
        ({"networkPolicy": {"callers": {"lobby": ["redis"]}}}, "/networkPolicy/callers/lobby/0"),
        ({"gateway": {"allowedOrigins": ["example.org"]}}, "/gateway/allowedOrigins/0"),
        ({"ingress": {"tls": [{"secret": "sonalyze-tls"}]}}, "/ingress/tls/0"),
        ({"ingress": {"tls": [{"hosts": "sonalyze.example.org"}]}}, "/ingress/tls/0/hosts"),
        ({"database": {"url": "mysql://db/x"}}, "/database/url"),
        ({"logLevel": "loud"}, "/logLevel"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render(values)


def test_a_secret_setting_in_env_is_refused() -> None:
    values = {"services": {"storage": {"env": {"SONALYZE_DATABASE_URL": "postgresql://x/y"}}}}
    with pytest.raises(helm_python.HelmError, match="set it through a Secret"):
        render(values)
