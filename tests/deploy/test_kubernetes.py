"""Kubernetes manifests validate against the API's schemas (and KEDA's) and say what matters."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from conveyor.deploy import render
from conveyor.deploy.kubernetes import BASE, FILES
from tests.deploy.conftest import DATA, documents, overridden, plan_for

#: The Kubernetes version the manifests are checked against (its schemas ship in
#: kubernetes-validate); the oldest release still widely run.
KUBERNETES = "1.30.0"


def _all(plan: Any = None) -> dict[str, list[dict[str, Any]]]:
    if plan is None:
        return copy.deepcopy(_default())
    files = render("kubernetes", plan)
    return {name: documents(files, f"kubernetes/{name}") for name in FILES}


@functools.cache
def _default() -> dict[str, list[dict[str, Any]]]:
    return _all(plan_for())


def _kind(manifests: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [m for docs in manifests.values() for m in docs if m["kind"] == kind]


def _strict(schema: Any) -> Any:
    """``schema`` refusing unknown fields wherever it lists the known ones."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        open_ended = "additionalProperties" in schema or schema.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _keda() -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / "keda-scaledobject-v1alpha1.json").read_text())
    return jsonschema.Draft7Validator(_strict(schema))


def test_every_core_manifest_validates_against_the_kubernetes_schemas() -> None:
    checked = 0
    for name, docs in _all().items():
        for manifest in docs:
            if manifest["kind"] == "ScaledObject":
                continue
            try:
                kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(
                    f"{name} {manifest['kind']}/{manifest['metadata']['name']}: {path}: {exc}"
                )
            checked += 1
    assert checked >= 20


def test_the_schema_check_catches_a_misspelt_field() -> None:
    deployment = _kind(_all(), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 10
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_scaled_objects_validate_against_kedas_schema() -> None:
    validator = _keda()
    objects = _kind(_all(), "ScaledObject")
    assert len(objects) == 5
    for scaled in objects:
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(scaled)]
        assert errors == [], scaled["metadata"]["name"]
    bad = dict(objects[0], spec={**objects[0]["spec"], "maxReplicas": 3})
    assert list(validator.iter_errors(bad))


def test_scaled_objects_poll_each_profiles_summed_backlog() -> None:
    for scaled in _kind(_all(), "ScaledObject"):
        profile = scaled["metadata"]["labels"]["conveyor/profile"]
        trigger = scaled["spec"]["triggers"][0]
        assert trigger["type"] == "metrics-api"
        assert trigger["metadata"]["url"].endswith(f":9808/profiles/{profile}")
        assert trigger["metadata"]["valueLocation"] == "backlog"
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"conveyor-worker-{profile}"
    hpas = _kind(_all(), "HorizontalPodAutoscaler")
    assert {h["spec"]["metrics"][0]["external"]["metric"]["name"] for h in hpas} == {
        "conveyor_profile_backlog"
    }


def test_worker_deployments_probe_the_heartbeat_and_outlast_the_hard_limit() -> None:
    topology = overridden({"profiles": {"processing": {"time_limit": 600}}})
    workers = {
        d["metadata"]["labels"]["conveyor/profile"]: d
        for d in _all(plan_for(topology))["workers.yaml"]
    }
    assert set(workers) == {"critical", "generation", "processing", "batch", "monitoring"}
    pod = workers["processing"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 660
    container = pod["containers"][0]
    assert container["livenessProbe"]["exec"]["command"][:2] == ["conveyor", "worker-probe"]
    assert container["readinessProbe"]["exec"]["command"][:2] == ["conveyor", "worker-probe"]
    assert container["resources"]["requests"] == {"cpu": "2000m", "memory": "2048Mi"}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    gpu = workers["generation"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_network_policies_confine_workers_and_the_broker() -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in _all()["network-policy.yaml"]}
    workers = policies["conveyor-workers"]
    assert workers["policyTypes"] == ["Ingress", "Egress"]
    assert workers["ingress"] == []
    ports = sorted(p["port"] for rule in workers["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5432, 6379]
    broker = policies["conveyor-broker"]
    assert broker["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "conveyor"}}}
    ]
    assert policies["conveyor-api"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]


def test_the_manager_may_scale_the_worker_deployments_and_nothing_else() -> None:
    manifests = _all()
    role = _kind(manifests, "Role")[0]
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]}
    ]
    manager = next(
        d for d in _kind(manifests, "Deployment") if d["metadata"]["name"].endswith("manager")
    )
    pod = manager["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "conveyor-manager"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CONVEYOR_AUTOSCALE_BACKEND"] == "kubernetes"
    names = {d["metadata"]["name"] for d in manifests["workers.yaml"]}
    assert {
        env["CONVEYOR_K8S_DEPLOYMENT"].format(profile=p) for p in ("batch", "processing")
    } <= names


def test_namespace_option_places_every_object() -> None:
    from conveyor.deploy import make_plan
    from conveyor.topology import default_topology
    from tests.deploy.conftest import default_settings

    plan = make_plan(default_settings(), default_topology(), namespace="media")
    for docs in _all(plan).values():
        for manifest in docs:
            if manifest["kind"] != "Namespace":
                assert manifest["metadata"]["namespace"] == "media"
    files = render("kubernetes", plan)
    kustomization = documents(files, "kubernetes/kustomization.yaml")[0]
    assert kustomization["resources"] == BASE


def test_selectors_and_references_point_at_objects_that_exist() -> None:
    manifests = _all()
    pods = [
        m["spec"]["template"]["metadata"]["labels"]
        for kind in ("Deployment", "StatefulSet")
        for m in _kind(manifests, kind)
    ]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pods)

    for service in _kind(manifests, "Service"):
        assert selects(service["spec"]["selector"]), service["metadata"]["name"]
    for policy in _kind(manifests, "NetworkPolicy"):
        assert selects(policy["spec"]["podSelector"]["matchLabels"]), policy["metadata"]["name"]
    deployments = {d["metadata"]["name"] for d in _kind(manifests, "Deployment")}
    for scaled in _kind(manifests, "ScaledObject") + _kind(manifests, "HorizontalPodAutoscaler"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    secrets = {s["metadata"]["name"] for s in _kind(manifests, "Secret")}
    for workload in _kind(manifests, "Deployment"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] in secrets
    assert "secrets.yaml" not in BASE
