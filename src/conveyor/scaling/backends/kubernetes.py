"""The Kubernetes back end: the replica count of each profile's Deployment.

It talks to the API server directly (``/apis/apps/v1/.../deployments/NAME/scale``,
the endpoint ``kubectl scale`` uses) with the standard library, so no client
package is needed. In a pod it reads the service account's token, CA and
namespace from ``/var/run/secrets/kubernetes.io/serviceaccount``; outside one
``CONVEYOR_K8S_API_URL`` (e.g. ``kubectl proxy``'s ``http://127.0.0.1:8001``)
and optionally ``CONVEYOR_K8S_TOKEN_FILE`` / ``CONVEYOR_K8S_CA_FILE`` say where.

The role needs ``get`` and ``patch`` on ``deployments/scale`` in its namespace
(``deploy/kubernetes/manager.yaml``).
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.scaling.backends.base import BackendError, HealthEvent, Usage
from conveyor.settings import Settings

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT_S = 10.0


@dataclass
class KubernetesBackend:
    """Reads and patches ``deployments/{name}/scale`` for each profile."""

    api_url: str
    namespace: str = "default"
    deployment: str = "conveyor-worker-{profile}"
    token: str | None = None
    ca_file: Path | None = None
    name: str = "kubernetes"

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesBackend:
        """Build from ``CONVEYOR_K8S_*``, falling back to the pod's service account."""
        api = settings.k8s_api_url
        if api is None:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise BackendError(
                    "kubernetes back end: no API server; set CONVEYOR_K8S_API_URL "
                    "(outside a cluster, e.g. http://127.0.0.1:8001 with `kubectl proxy`)"
                )
            api = f"https://{host}:{port}"
        token_file = settings.k8s_token_file or SERVICE_ACCOUNT / "token"
        token = token_file.read_text().strip() if token_file.is_file() else None
        ca = settings.k8s_ca_file or SERVICE_ACCOUNT / "ca.crt"
        namespace = settings.k8s_namespace
        if namespace is None:
            ns_file = SERVICE_ACCOUNT / "namespace"
            namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
        return cls(
            api_url=api.rstrip("/"),
            namespace=namespace,
            deployment=settings.k8s_deployment,
            token=token,
            ca_file=ca if ca.is_file() else None,
        )

    def scale_path(self, profile: str) -> str:
        """The API path of ``profile``'s Deployment's scale subresource."""
        name = self.deployment.format(profile=profile)
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}/scale"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/merge-patch+json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.api_url + path, data=data, method=method, headers=headers
        )
        context = None
        if self.api_url.startswith("https://"):
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as reply:
                return json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise BackendError(
                f"kubernetes API {method} {path}: HTTP {exc.code} {detail}".strip()
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"kubernetes API unreachable at {self.api_url}: {reason}") from None

    def current(self, profile: str) -> int:
        """The Deployment's desired replicas (``spec.replicas`` of its scale)."""
        reply = self._request("GET", self.scale_path(profile))
        return int(reply.get("spec", {}).get("replicas", 0))

    def scale(self, profile: str, count: int) -> None:
        """Patch the replica count; Kubernetes stops removed pods with SIGTERM (warm)."""
        if count < 0:
            raise BackendError(f"cannot run a negative number of workers ({count})")
        self._request("PATCH", self.scale_path(profile), {"spec": {"replicas": count}})

    def usage(self, profile: str) -> Usage:
        """Unknown here (the metrics API is the cluster's business); the rules skip it."""
        return Usage()

    def check_health(self) -> list[HealthEvent]:
        """Kubernetes restarts pods whose liveness probe (``conveyor worker-probe``) fails."""
        return []

    def close(self, grace_s: float) -> None:
        """Nothing to release: the pods belong to their Deployments."""
