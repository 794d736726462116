"""Kubernetes manifests: broker, API, recorder, beat, a Deployment per profile, the manager.

Each file is a list of manifests (plain data, dumped to YAML by the renderer):

* ``namespace.yaml``, ``secrets.yaml`` (the broker password, the broker and store URLs);
* ``broker.yaml`` — Valkey as a StatefulSet with AOF on a volume, ``noeviction``;
* ``conveyor.yaml`` — the API (Service, HTTP probes), the recorder and beat (one each);
* ``workers.yaml`` — a Deployment per profile: liveness and readiness from the
  heartbeat file (``conveyor worker-probe``), requests and limits from the
  concurrency, ``terminationGracePeriodSeconds`` above the hard time limit, a
  GPU for GPU profiles;
* ``manager.yaml`` — ``conveyor autoscale`` with the kubernetes back end and the
  RBAC it needs (``get``/``patch`` on ``deployments/scale``), serving the backlog;
* ``network-policy.yaml`` — workers reach only the broker and the store, the
  API is reachable, the broker only from Conveyor's pods;
* ``keda.yaml`` / ``hpa.yaml`` — alternatives to the manager's scaling, on the
  profile's summed backlog (every priority list + reserved + due soon).
"""

from __future__ import annotations

from typing import Any

from conveyor.deploy import workloads as w
from conveyor.deploy.plan import (
    API_PORT,
    BROKER_PORT,
    STORE_PORT,
    DeployPlan,
    ProfilePlan,
)

Manifest = dict[str, Any]

BROKER = "conveyor-valkey"
MANAGER = "conveyor-manager"


def namespace(plan: DeployPlan) -> list[Manifest]:
    """The namespace everything else lives in."""
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace}}]


def secrets(plan: DeployPlan) -> list[Manifest]:
    """The broker password and the URLs; replace the placeholders before applying."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": w.meta(plan, w.BROKER_SECRET, "broker"),
            "type": "Opaque",
            "stringData": {"password": "CHANGE-ME"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": w.meta(plan, w.ENV_SECRET, "config"),
            "type": "Opaque",
            "stringData": {
                "REDIS_URL": f"redis://{BROKER}:{BROKER_PORT}/0",
                "DATABASE_URL": "postgresql://conveyor:CHANGE-ME@postgres:5432/conveyor",
                "CONVEYOR_APP": "conveyor.packs:app",
            },
        },
    ]


def broker(plan: DeployPlan) -> list[Manifest]:
    """Valkey: one replica, AOF on a persistent volume, the password from the Secret."""
    # The password goes into a config include, so it is on no command line.
    script = (
        'printf \'requirepass "%s"\\n\' "$VALKEY_PASSWORD" > /tmp/auth.conf && '
        "exec valkey-server --include /tmp/auth.conf --appendonly yes "
        "--appendfsync everysec --maxmemory-policy noeviction"
    )
    ping = ["sh", "-c", 'REDISCLI_AUTH="$VALKEY_PASSWORD" valkey-cli ping | grep -q PONG']
    container = {
        "name": "valkey",
        "image": "valkey/valkey:8.1",
        "command": ["sh", "-c", script],
        "env": [
            {
                "name": "VALKEY_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": w.BROKER_SECRET, "key": "password"}},
            }
        ],
        "ports": [{"name": "redis", "containerPort": BROKER_PORT}],
        "readinessProbe": {"exec": {"command": ping}, "periodSeconds": 5},
        "livenessProbe": {"exec": {"command": ping}, "periodSeconds": 15, "failureThreshold": 4},
        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "securityContext": w.SECURE_CONTAINER,
    }
    selector = w.labels("broker")
    return [
        w.service(plan, BROKER, "broker", BROKER_PORT, "redis"),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": w.meta(plan, BROKER, "broker"),
            "spec": {
                "serviceName": BROKER,
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {
                        "securityContext": {"fsGroup": 999, "runAsUser": 999, "runAsNonRoot": True},
                        "containers": [container],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "10Gi"}},
                        },
                    }
                ],
            },
        },
    ]


def services(plan: DeployPlan) -> list[Manifest]:
    """The API (two replicas behind a Service), the recorder and beat (one each)."""
    api = w.container(plan, "api", ["conveyor", "api", "--host", "0.0.0.0", "--port", "8000"])
    api["ports"] = [{"name": "http", "containerPort": API_PORT}]
    api["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 15,
        "failureThreshold": 3,
    }
    api["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    api["resources"] = w.resources("500m", "512Mi", "1Gi")
    recorder = w.container(plan, "recorder", ["conveyor", "recorder"])
    recorder["resources"] = w.resources("250m", "256Mi", "512Mi")
    beat = w.container(plan, "beat", ["conveyor", "beat"])
    beat["resources"] = w.resources("50m", "128Mi", "256Mi")
    return [
        w.service(plan, "conveyor-api", "api", API_PORT, "http"),
        w.deployment(plan, "conveyor-api", "api", [api], replicas=2),
        # One recorder and one beat: Recreate, so an update never runs two.
        w.deployment(plan, "conveyor-recorder", "recorder", [recorder], single=True),
        w.deployment(plan, "conveyor-beat", "beat", [beat], single=True),
    ]


def workers(plan: DeployPlan) -> list[Manifest]:
    """A Deployment per profile."""
    return [w.worker_deployment(plan, profile) for profile in plan.profiles]


def manager(plan: DeployPlan) -> list[Manifest]:
    """The worker manager, its RBAC, and the Service that serves the backlog."""
    name = MANAGER
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": w.meta(plan, name, "manager"),
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": w.meta(plan, name, "manager"),
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]}
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": w.meta(plan, name, "manager"),
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": plan.namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
    }
    argv = ["conveyor", "autoscale", "--profiles", ",".join(plan.profile_names())]
    container = w.container(plan, "manager", argv)
    container["env"] += [
        {"name": "CONVEYOR_AUTOSCALE_BACKEND", "value": "kubernetes"},
        {"name": "CONVEYOR_K8S_DEPLOYMENT", "value": w.WORKER_DEPLOYMENT},
        {"name": "CONVEYOR_AUTOSCALE_METRICS_PORT", "value": str(plan.metrics_port)},
    ]
    container["ports"] = [{"name": "metrics", "containerPort": plan.metrics_port}]
    container["resources"] = w.resources("50m", "128Mi", "256Mi")
    deployment = w.deployment(plan, name, "manager", [container], single=True)
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = name
    return [
        account,
        role,
        binding,
        deployment,
        w.service(plan, name, "manager", plan.metrics_port, "metrics"),
    ]


def network_policies(plan: DeployPlan) -> list[Manifest]:
    """Workers reach only the broker and store; the API is open; the broker only to Conveyor."""
    dns = {
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        "to": [{"namespaceSelector": {}}],
    }
    to_broker = {
        "to": [{"podSelector": {"matchLabels": w.labels("broker")}}],
        "ports": [{"protocol": "TCP", "port": BROKER_PORT}],
    }
    # The store is usually outside the cluster (a managed PostgreSQL): by port.
    to_store = {"ports": [{"protocol": "TCP", "port": STORE_PORT}]}
    part_of = {"app.kubernetes.io/part-of": w.PART_OF}
    return [
        w.policy(
            plan,
            "conveyor-workers",
            w.labels("worker"),
            ingress=[],
            egress=[to_broker, to_store, dns],
        ),
        w.policy(
            plan,
            "conveyor-broker",
            w.labels("broker"),
            ingress=[
                {
                    "from": [{"podSelector": {"matchLabels": part_of}}],
                    "ports": [{"protocol": "TCP", "port": BROKER_PORT}],
                }
            ],
        ),
        w.policy(
            plan,
            "conveyor-api",
            w.labels("api"),
            ingress=[{"ports": [{"protocol": "TCP", "port": API_PORT}]}],
        ),
    ]


def keda(plan: DeployPlan) -> list[Manifest]:
    """A KEDA ScaledObject per profile, polling the manager's summed backlog of the profile."""
    return [_scaled_object(plan, profile) for profile in plan.profiles]


def _scaled_object(plan: DeployPlan, profile: ProfilePlan) -> Manifest:
    url = f"http://{MANAGER}.{plan.namespace}.svc:{plan.metrics_port}/profiles/{profile.name}"
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": w.meta(plan, w.worker_name(profile), "worker", profile.name),
        "spec": {
            "scaleTargetRef": {"name": w.worker_name(profile)},
            "minReplicaCount": profile.bounds[0],
            "maxReplicaCount": profile.bounds[1],
            "pollingInterval": plan.poll_s,
            "cooldownPeriod": plan.down_delay_s,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": plan.down_delay_s}}
                }
            },
            "triggers": [
                {
                    "type": "metrics-api",
                    "metricType": "AverageValue",
                    "metadata": {
                        "url": url,
                        "valueLocation": "backlog",
                        "targetValue": str(plan.backlog_per_worker),
                    },
                }
            ],
        },
    }


def hpa(plan: DeployPlan) -> list[Manifest]:
    """An HPA per profile on ``conveyor_profile_backlog`` (through prometheus-adapter) and CPU."""
    return [_hpa(plan, profile) for profile in plan.profiles]


def _hpa(plan: DeployPlan, profile: ProfilePlan) -> Manifest:
    name = w.worker_name(profile)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": w.meta(plan, name, "worker", profile.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": max(1, profile.bounds[0]),
            "maxReplicas": profile.bounds[1],
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {
                            "name": "conveyor_profile_backlog",
                            "selector": {"matchLabels": {"profile": profile.name}},
                        },
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(plan.backlog_per_worker),
                        },
                    },
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                },
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": plan.down_delay_s}},
        },
    }


#: File name → what it holds, in the order to apply them.
FILES = {
    "namespace.yaml": namespace,
    "secrets.yaml": secrets,
    "broker.yaml": broker,
    "conveyor.yaml": services,
    "workers.yaml": workers,
    "manager.yaml": manager,
    "network-policy.yaml": network_policies,
    "keda.yaml": keda,
    "hpa.yaml": hpa,
}
#: The files ``kubectl apply -k`` applies: not the Secrets (placeholders: create them
#: yourself), nor KEDA and HPA (alternatives to the manager's scaling).
BASE = [name for name in FILES if name not in ("secrets.yaml", "keda.yaml", "hpa.yaml")]
