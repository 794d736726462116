"""The Kubernetes back end: the replica count of each profile's Deployment.

It uses the official client (``pip install 'conveyor[kubernetes]'``):
``AppsV1Api.read_namespaced_deployment_scale`` and
``patch_namespaced_deployment_scale`` with the merge patch
``{"spec": {"replicas": N}}`` — the ``deployments/NAME/scale`` subresource that
``kubectl scale`` uses. Where the API server is comes, in this order, from
``CONVEYOR_K8S_API_URL`` (e.g. ``kubectl proxy``'s ``http://127.0.0.1:8001``, with
optional ``CONVEYOR_K8S_TOKEN_FILE`` / ``CONVEYOR_K8S_CA_FILE``), the pod's service
account (``load_incluster_config``), then the kubeconfig (``load_kube_config``).

The role needs ``get`` and ``patch`` on ``deployments/scale`` in its namespace
(``deploy/kubernetes/manager.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from conveyor.errors import ConfigurationError
from conveyor.scaling.backends.base import BackendError, HealthEvent, Usage
from conveyor.settings import Settings

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT_S = 10.0
PATCH_CONTENT_TYPE = "application/merge-patch+json"
INSTALL_HINT = (
    "the kubernetes back end needs the kubernetes client: pip install 'conveyor[kubernetes]'"
)


def _kubernetes() -> ModuleType:
    """The ``kubernetes`` package, or a :class:`ConfigurationError` saying how to get it."""
    try:
        import kubernetes.client
        import kubernetes.config
    except ImportError:
        raise ConfigurationError(INSTALL_HINT) from None
    return kubernetes


@dataclass
class KubernetesBackend:
    """Reads and patches ``deployments/{name}/scale`` for each profile."""

    api_url: str
    namespace: str = "default"
    deployment: str = "conveyor-worker-{profile}"
    token: str | None = None
    ca_file: Path | None = None
    name: str = "kubernetes"
    #: A ready ``kubernetes.client.Configuration`` (in-cluster or kubeconfig);
    #: when given it is used as it is, and ``api_url`` only names the server in errors.
    configuration: Any = field(default=None, repr=False)
    _api: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _kubernetes()  # fail now, with the install hint, rather than on the first tick

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesBackend:
        """Build from ``CONVEYOR_K8S_*``, else the pod's service account, else kubeconfig."""
        k8s = _kubernetes()
        namespace = settings.k8s_namespace
        if settings.k8s_api_url is not None:
            token_file = settings.k8s_token_file or SERVICE_ACCOUNT / "token"
            token = token_file.read_text().strip() if token_file.is_file() else None
            ca = settings.k8s_ca_file or SERVICE_ACCOUNT / "ca.crt"
            return cls(
                api_url=settings.k8s_api_url.rstrip("/"),
                namespace=namespace or _pod_namespace() or "default",
                deployment=settings.k8s_deployment,
                token=token,
                ca_file=ca if ca.is_file() else None,
            )
        configuration = k8s.client.Configuration()
        try:
            k8s.config.load_incluster_config(client_configuration=configuration)
            namespace = namespace or _pod_namespace()
        except k8s.config.ConfigException as in_cluster:
            try:
                k8s.config.load_kube_config(client_configuration=configuration)
            except (k8s.config.ConfigException, OSError) as kubeconfig:
                raise BackendError(
                    "kubernetes back end: no API server; set CONVEYOR_K8S_API_URL "
                    "(outside a cluster, e.g. http://127.0.0.1:8001 with `kubectl proxy`), "
                    f"run in a pod ({in_cluster}) or provide a kubeconfig ({kubeconfig})"
                ) from None
            namespace = namespace or _kubeconfig_namespace(k8s)
        return cls(
            api_url=str(configuration.host).rstrip("/"),
            namespace=namespace or "default",
            deployment=settings.k8s_deployment,
            configuration=configuration,
        )

    def deployment_name(self, profile: str) -> str:
        """The name of ``profile``'s Deployment."""
        return self.deployment.format(profile=profile)

    def scale_path(self, profile: str) -> str:
        """The API path of ``profile``'s Deployment's scale subresource."""
        name = self.deployment_name(profile)
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}/scale"

    def _apps(self) -> Any:
        """An ``AppsV1Api`` on this back end's configuration (built once)."""
        if self._api is None:
            k8s = _kubernetes()
            configuration = self.configuration
            if configuration is None:
                configuration = k8s.client.Configuration(host=self.api_url)
                if self.token:
                    configuration.api_key["BearerToken"] = self.token
                    configuration.api_key_prefix["BearerToken"] = "Bearer"
                if self.ca_file is not None:
                    configuration.ssl_ca_cert = str(self.ca_file)
            configuration.retries = 0  # the manager tries again next round
            self._api = k8s.client.AppsV1Api(k8s.client.ApiClient(configuration))
        return self._api

    def _call(self, verb: str, profile: str, **kwargs: Any) -> Any:
        k8s = _kubernetes()
        from urllib3.exceptions import HTTPError as Urllib3Error

        name = self.deployment_name(profile)
        apps = self._apps()
        try:
            if verb == "get":
                return apps.read_namespaced_deployment_scale(
                    name, self.namespace, _request_timeout=TIMEOUT_S
                )
            return apps.patch_namespaced_deployment_scale(
                name,
                self.namespace,
                kwargs["body"],
                _content_type=PATCH_CONTENT_TYPE,
                _request_timeout=TIMEOUT_S,
            )
        except k8s.client.ApiException as exc:
            raise self._api_error(verb, name, exc) from None
        except (Urllib3Error, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BackendError(f"kubernetes API unreachable at {self.api_url}: {reason}") from None

    def _api_error(self, verb: str, name: str, exc: Any) -> BackendError:
        status = int(exc.status or 0)
        where = f"Deployment {name!r} in namespace {self.namespace!r}"
        if status == 0:
            return BackendError(f"kubernetes API unreachable at {self.api_url}: {exc.reason}")
        if status == 401:
            return BackendError(
                f"kubernetes API at {self.api_url} rejected the credentials (401 Unauthorized); "
                "check CONVEYOR_K8S_TOKEN_FILE or the service account token"
            )
        if status == 403:
            return BackendError(
                f"kubernetes API at {self.api_url}: 403 Forbidden for {where}; the role needs "
                f"RBAC permission {verb!r} on 'deployments/scale' (apiGroup 'apps') in "
                f"namespace {self.namespace!r} (see deploy/kubernetes/manager.yaml)"
            )
        if status == 404:
            return BackendError(
                f"kubernetes: {where} not found (404); check CONVEYOR_K8S_DEPLOYMENT "
                "and CONVEYOR_K8S_NAMESPACE"
            )
        detail = str(exc.body or exc.reason or "").strip()[:300]
        return BackendError(
            f"kubernetes API {verb} scale of {where}: HTTP {status} {detail}".strip()
        )

    def current(self, profile: str) -> int:
        """The Deployment's desired replicas (``spec.replicas`` of its scale)."""
        scale = self._call("get", profile)
        spec = getattr(scale, "spec", None)
        replicas = getattr(spec, "replicas", None)
        return int(replicas or 0)

    def scale(self, profile: str, count: int) -> None:
        """Patch the replica count; Kubernetes stops removed pods with SIGTERM (warm)."""
        if count < 0:
            raise BackendError(f"cannot run a negative number of workers ({count})")
        self._call("patch", profile, body={"spec": {"replicas": count}})

    def usage(self, profile: str) -> Usage:
        """Unknown here (the metrics API is the cluster's business); the rules skip it."""
        return Usage()

    def check_health(self) -> list[HealthEvent]:
        """Kubernetes restarts pods whose liveness probe (``conveyor worker-probe``) fails."""
        return []

    def close(self, grace_s: float) -> None:
        """Release the client's connections; the pods belong to their Deployments."""
        if self._api is not None:
            self._api.api_client.close()
            self._api = None


def _pod_namespace() -> str | None:
    """The namespace of the pod this runs in (its service account says), if any."""
    ns_file = SERVICE_ACCOUNT / "namespace"
    return ns_file.read_text().strip() or None if ns_file.is_file() else None


def _kubeconfig_namespace(k8s: ModuleType) -> str | None:
    """The namespace of the kubeconfig's current context, if it names one."""
    try:
        _, active = k8s.config.list_kube_config_contexts()
    except Exception:
        return None
    namespace = (active or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else None
