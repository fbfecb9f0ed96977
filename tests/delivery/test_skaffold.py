"""skaffold.yaml and kind-config.yaml: valid against their schemas, and skaffold builds exactly the
images the chart runs (checked by rendering the chart with the values skaffold would set)."""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.chart import (
    CHART,
    ROOT,
    SERVICES,
    component,
    containers,
    kinds,
    pod_specs,
    render,
)

SCHEMAS = ROOT.parent / "shared" / "schemas"
SKAFFOLD = ROOT / "skaffold.yaml"
KIND_CONFIG = ROOT / "kind-config.yaml"


def skaffold() -> dict[str, Any]:
    return yaml.safe_load(SKAFFOLD.read_text())


def release() -> dict[str, Any]:
    (only,) = skaffold()["manifests"]["helm"]["releases"]
    return only


@pytest.mark.parametrize(
    ("config", "schema"),
    [(SKAFFOLD, "skaffold-v4beta13.json"), (KIND_CONFIG, "kind-v1alpha4.schema.json")],
    ids=["skaffold", "kind"],
)
def test_config_validates_against_its_schema(config: Path, schema: str) -> None:
    if not (SCHEMAS / schema).is_file():
        pytest.skip(f"{SCHEMAS / schema} is absent (it lives outside the repo, in ../shared)")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", SCHEMAS / schema, config],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_skaffold_renders_the_chart_with_helm_and_deploys_it() -> None:
    # The schema accepts any apiVersion and a missing deploy section: check them here.
    config = skaffold()
    assert config["apiVersion"] == "skaffold/v4beta13"
    assert config["deploy"] == {"helm": {}}
    assert (ROOT / release()["chartPath"]).resolve() == CHART


def test_one_artifact_per_service_built_from_the_repo_root() -> None:
    artifacts = skaffold()["build"]["artifacts"]
    assert sorted(a["image"] for a in artifacts) == sorted(f"sonalyze-{s}" for s in SERVICES)
    for artifact in artifacts:
        service = artifact["image"].removeprefix("sonalyze-")
        assert (ROOT / artifact.get("context", ".")).resolve() == ROOT
        assert artifact["docker"]["dockerfile"] == f"{service}/Dockerfile"
        assert (ROOT / service / "Dockerfile").is_file(), f"{service}/Dockerfile is missing"


def fake_build(image: str, pushed: bool) -> tuple[str, str]:
    """A tag and a digest for an artifact, different for each: pushed to a registry, an image has a
    digest; loaded into kind, it has none."""
    sha = hashlib.sha256(image.encode()).hexdigest()
    return f"dev-{sha[:7]}", f"sha256:{sha}" if pushed else ""


def built(image: str, pushed: bool) -> str:
    """The reference skaffold hands over for an artifact."""
    tag, digest = fake_build(image, pushed)
    return f"{image}:{tag}@{digest}" if digest else f"{image}:{tag}"


def skaffold_values(pushed: bool) -> dict[str, Any]:
    """The chart values skaffold sets: setValueTemplates expanded as skaffold does (artifact names
    with `/ - . :` written `_`; a trailing "@" dropped when there is no digest), plus setValues."""
    fields: dict[str, str] = {}
    for artifact in skaffold()["build"]["artifacts"]:
        name = re.sub(r"[/\-.:]", "_", artifact["image"])
        tag, digest = fake_build(artifact["image"], pushed)
        fields |= {
            f"IMAGE_REPO_{name}": artifact["image"],
            f"IMAGE_TAG_{name}": tag,
            f"IMAGE_DIGEST_{name}": digest,
            f"IMAGE_FULLY_QUALIFIED_{name}": built(artifact["image"], pushed),
        }

    def expand(template: str) -> str:
        text = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: fields[m.group(1)], template)
        assert "{{" not in text, f"unsupported template {template!r}"
        return text.removesuffix("@")

    dotted = {key: expand(value) for key, value in release()["setValueTemplates"].items()}
    dotted |= release().get("setValues", {})
    values: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = values
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return values


@functools.cache
def skaffold_render(pushed: bool) -> list[dict[str, Any]]:
    return render(
        skaffold_values(pushed), release=release()["name"], namespace=release()["namespace"]
    )


@pytest.mark.parametrize("pushed", [True, False], ids=["pushed", "loaded-into-kind"])
def test_skaffold_builds_exactly_the_images_the_chart_runs(pushed: bool) -> None:
    objects = skaffold_render(pushed)
    run = [container for _, template in pod_specs(objects) for container in containers(template)]
    images = {container["image"] for container in run}
    simulation = component(objects, "Deployment", "simulation")
    env = {
        var["name"]: var.get("value")
        for container in simulation["spec"]["template"]["spec"]["containers"]
        for var in container.get("env", [])
    }
    assert env.get("SONALYZE_KUBE_IMAGE"), "the simulation Deployment names no worker Job image"
    images.add(env["SONALYZE_KUBE_IMAGE"])

    expected = {built(a["image"], pushed) for a in skaffold()["build"]["artifacts"]}
    ours = {image for image in images if "sonalyze" in image}
    assert expected <= images, f"built but never run: {sorted(expected - images)}"
    assert ours <= expected, f"run but not built by skaffold: {sorted(ours - expected)}"
    # The images exist only inside the kind nodes: nothing may try to pull them.
    assert {c["imagePullPolicy"] for c in run if c["image"] in expected} == {"IfNotPresent"}


def test_port_forward_targets_a_port_of_a_rendered_service() -> None:
    (forward,) = skaffold()["portForward"]
    assert forward["resourceType"].lower() == "service"
    services = {
        (obj["metadata"]["name"], obj["metadata"].get("namespace", release()["namespace"])): obj
        for obj in kinds(skaffold_render(False), "Service")
    }
    service = services.get((forward["resourceName"], forward["namespace"]))
    assert service, f"no Service {forward['resourceName']} in {forward['namespace']}"
    ports = [port["port"] for port in service["spec"]["ports"]]
    assert forward["port"] in ports, f"{forward['resourceName']} listens on {ports}"


def test_kind_node_is_ingress_ready_with_http_ports_published() -> None:
    def labels(node: dict[str, Any]) -> dict[str, str]:
        found = dict(node.get("labels", {}))
        for patch in map(yaml.safe_load, node.get("kubeadmConfigPatches", [])):
            args = patch.get("nodeRegistration", {}).get("kubeletExtraArgs", {})
            found |= dict(kv.split("=", 1) for kv in args.get("node-labels", "").split(",") if kv)
        return found

    config = yaml.safe_load(KIND_CONFIG.read_text())
    ready = [node for node in config["nodes"] if labels(node).get("ingress-ready") == "true"]
    assert len(ready) == 1, "exactly one node should carry the ingress-ready=true label"
    published = {
        (m["containerPort"], m["hostPort"], m.get("protocol", "TCP"))
        for m in ready[0].get("extraPortMappings", [])
    }
    assert {(80, 80, "TCP"), (443, 443, "TCP")} <= published, f"published: {sorted(published)}"
