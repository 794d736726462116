"""Building blocks of the Kubernetes manifests: labels, containers, Deployments, Services."""

from __future__ import annotations

from typing import Any

from conveyor.deploy.plan import HEARTBEAT_FILE, DeployPlan, ProfilePlan

PART_OF = "conveyor"
BROKER_SECRET = "conveyor-broker"
ENV_SECRET = "conveyor-env"
#: ``CONVEYOR_K8S_DEPLOYMENT``: the worker Deployment of a profile.
WORKER_DEPLOYMENT = "conveyor-worker-{profile}"
SECURE_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
#: The image's user (deploy/Dockerfile).
RUN_AS = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}


def labels(component: str, profile: str | None = None) -> dict[str, str]:
    """The labels that select a component's pods (and a worker profile's)."""
    found = {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component}
    if profile is not None:
        found["conveyor/profile"] = profile
    return found


def meta(plan: DeployPlan, name: str, component: str, profile: str | None = None) -> dict[str, Any]:
    """``metadata`` of an object in the plan's namespace."""
    return {"name": name, "namespace": plan.namespace, "labels": labels(component, profile)}


def worker_name(profile: ProfilePlan) -> str:
    """The Deployment that runs ``profile``'s workers."""
    return WORKER_DEPLOYMENT.format(profile=profile.name)


def resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    """Requests of ``cpu`` and ``memory``, with memory limited to ``memory_limit``."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def container(plan: DeployPlan, name: str, argv: list[str]) -> dict[str, Any]:
    """A Conveyor container: the image, the config Secret, the broker password."""
    return {
        "name": name,
        "image": plan.image,
        "args": argv,
        "envFrom": [{"secretRef": {"name": ENV_SECRET}}],
        "env": [
            {
                "name": "REDIS_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": BROKER_SECRET, "key": "password"}},
            }
        ],
        "securityContext": SECURE_CONTAINER,
    }


def deployment(
    plan: DeployPlan,
    name: str,
    component: str,
    containers: list[dict[str, Any]],
    *,
    replicas: int = 1,
    single: bool = False,
    profile: str | None = None,
) -> dict[str, Any]:
    """A Deployment of ``containers``; ``single``: never two at once (Recreate)."""
    selector = labels(component, profile)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": selector},
            "spec": {"securityContext": RUN_AS, "containers": containers},
        },
    }
    if single:
        spec["strategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(plan, name, component, profile),
        "spec": spec,
    }


def service(plan: DeployPlan, name: str, component: str, port: int, port_name: str) -> Any:
    """A ClusterIP Service in front of ``component``'s pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(plan, name, component),
        "spec": {
            "selector": labels(component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }


def worker_deployment(plan: DeployPlan, profile: ProfilePlan) -> dict[str, Any]:
    """``profile``'s workers: heartbeat probes, sized by concurrency, warm shutdown, GPU."""
    probe = ["conveyor", "worker-probe", "--file", HEARTBEAT_FILE]
    worker = container(plan, "worker", ["conveyor", "worker", "--profile", profile.name])
    worker["env"].append({"name": "CONVEYOR_HEARTBEAT_FILE", "value": HEARTBEAT_FILE})
    # GPU workers load models in their start hooks: give them longer to come up.
    start_s = 120 if profile.gpu else 30
    worker["livenessProbe"] = {
        "exec": {"command": probe},
        "initialDelaySeconds": start_s,
        "periodSeconds": 15,
        "timeoutSeconds": 10,
        "failureThreshold": 3,
    }
    # Ready once a heartbeat reached the broker: the worker is consuming.
    worker["readinessProbe"] = {
        "exec": {"command": probe},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": 10,
    }
    processes = profile.concurrency if profile.profile.pool == "prefork" else 1
    worker["resources"] = resources(
        f"{500 * processes}m", f"{512 * processes}Mi", f"{1024 * processes}Mi"
    )
    manifest = deployment(
        plan,
        worker_name(profile),
        "worker",
        [worker],
        replicas=max(1, profile.bounds[0]),
        profile=profile.name,
    )
    pod = manifest["spec"]["template"]["spec"]
    # SIGTERM starts Celery's warm shutdown; running jobs finish before SIGKILL.
    pod["terminationGracePeriodSeconds"] = profile.grace_s
    if profile.gpu:
        worker["resources"]["limits"]["nvidia.com/gpu"] = 1
        pod["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return manifest


def policy(
    plan: DeployPlan,
    name: str,
    selector: dict[str, str],
    *,
    ingress: list[dict[str, Any]],
    egress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A NetworkPolicy for the pods of ``selector`` (egress left open when None)."""
    types = ["Ingress"] if egress is None else ["Ingress", "Egress"]
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": selector},
        "policyTypes": types,
        "ingress": ingress,
    }
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(plan, name, "network"),
        "spec": spec,
    }
