"""The Kubernetes and compose back ends, checked on the exact requests and commands they make."""

from __future__ import annotations

import json
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError
from conveyor.scaling import status
from conveyor.scaling.backends.base import BackendError
from conveyor.scaling.backends.compose import ComposeBackend
from conveyor.scaling.backends.kubernetes import KubernetesBackend
from conveyor.scaling.manager import Manager
from conveyor.settings import Settings


class ApiServer:
    """A tiny HTTP server standing in for the API server's scale subresource.

    It records each request (method, path, headers with lower-case names, JSON body)
    and answers with a ``Scale`` object, or with ``fail`` (status, message) when set.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replicas = 2
        self.fail: tuple[int, str] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                if outer.fail is not None:
                    code, message = outer.fail
                    answer: dict[str, Any] = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": message,
                        "code": code,
                    }
                else:
                    code = 200
                    if body is not None:
                        outer.replicas = body["spec"]["replicas"]
                    answer = {
                        "kind": "Scale",
                        "apiVersion": "autoscaling/v1",
                        "metadata": {"name": self.path.split("/")[-2]},
                        "spec": {"replicas": outer.replicas},
                        "status": {"replicas": outer.replicas},
                    }
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _reply
            do_PATCH = _reply

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    yield server
    server.server.shutdown()


def test_kubernetes_reads_and_patches_the_deployment_scale(api: ApiServer) -> None:
    backend = KubernetesBackend(api.url, namespace="jobs", token="s3cret")
    assert backend.current("generation") == 2
    backend.scale("generation", 7)
    get, patch = api.requests
    path = "/apis/apps/v1/namespaces/jobs/deployments/conveyor-worker-generation/scale"
    assert (get["method"], get["path"], get["body"]) == ("GET", path, None)
    assert get["headers"]["authorization"] == "Bearer s3cret"
    assert "application/json" in get["headers"]["accept"]
    assert (patch["method"], patch["path"]) == ("PATCH", path)
    assert patch["body"] == {"spec": {"replicas": 7}}
    assert patch["headers"]["content-type"] == "application/merge-patch+json"
    assert patch["headers"]["authorization"] == "Bearer s3cret"
    assert backend.current("generation") == 7
    backend.close(0)


def test_kubernetes_sends_no_authorization_without_a_token(api: ApiServer) -> None:
    KubernetesBackend(api.url, namespace="jobs").current("batch")
    assert "authorization" not in api.requests[0]["headers"]


def test_kubernetes_names_come_from_the_template(api: ApiServer) -> None:
    backend = KubernetesBackend(api.url, namespace="ns", deployment="{profile}-workers")
    backend.scale("batch", 0)
    assert api.requests[0]["path"] == "/apis/apps/v1/namespaces/ns/deployments/batch-workers/scale"
    assert api.requests[0]["body"] == {"spec": {"replicas": 0}}


def test_kubernetes_from_settings_uses_the_explicit_url_token_and_namespace(
    api: ApiServer, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    settings = Settings.model_validate(
        {
            "CONVEYOR_K8S_API_URL": api.url + "/",
            "CONVEYOR_K8S_TOKEN_FILE": str(token),
            "CONVEYOR_K8S_NAMESPACE": "prod",
            "CONVEYOR_K8S_DEPLOYMENT": "w-{profile}",
        }
    )
    backend = KubernetesBackend.from_settings(settings)
    assert backend.api_url == api.url
    backend.scale("critical", 3)
    [patch] = api.requests
    assert patch["path"] == "/apis/apps/v1/namespaces/prod/deployments/w-critical/scale"
    assert patch["headers"]["authorization"] == "Bearer t0ken"


def test_kubernetes_from_settings_falls_back_to_the_kubeconfig(
    api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.config import kube_config

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": api.url}}],
                "users": [{"name": "u", "user": {"token": "kube-t0ken"}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "team"}}
                ],
                "current-context": "x",
            }
        )
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setattr(
        "conveyor.scaling.backends.kubernetes.SERVICE_ACCOUNT", tmp_path / "no-such-dir"
    )
    settings = Settings.model_validate({})
    backend = KubernetesBackend.from_settings(settings)
    assert (backend.api_url, backend.namespace) == (api.url, "team")
    assert backend.current("processing") == 2
    [get] = api.requests
    assert (
        get["path"] == "/apis/apps/v1/namespaces/team/deployments/conveyor-worker-processing/scale"
    )
    assert get["headers"]["authorization"] == "Bearer kube-t0ken"


def test_kubernetes_without_any_api_server_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.config import kube_config

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "none"))
    with pytest.raises(BackendError, match="no API server; set CONVEYOR_K8S_API_URL"):
        KubernetesBackend.from_settings(Settings.model_validate({}))


def test_unreachable_kubernetes_api_is_a_clear_error() -> None:
    backend = KubernetesBackend("http://127.0.0.1:9", namespace="jobs")
    with pytest.raises(BackendError, match=r"kubernetes API unreachable at http://127\.0\.0\.1:9"):
        backend.current("processing")
    with pytest.raises(BackendError, match=r"kubernetes API unreachable at http://127\.0\.0\.1:9"):
        backend.scale("processing", 3)
    with pytest.raises(BackendError, match="negative"):
        backend.scale("processing", -1)


def test_forbidden_names_the_missing_rbac_permission(api: ApiServer) -> None:
    api.fail = (403, 'deployments.apps "conveyor-worker-batch" is forbidden')
    backend = KubernetesBackend(api.url, namespace="jobs")
    with pytest.raises(BackendError, match=r"403.*'get' on 'deployments/scale'.*'jobs'"):
        backend.current("batch")
    with pytest.raises(BackendError, match=r"403.*'patch' on 'deployments/scale'.*'jobs'"):
        backend.scale("batch", 2)


def test_missing_deployment_names_it_and_its_namespace(api: ApiServer) -> None:
    api.fail = (404, 'deployments.apps "conveyor-worker-batch" not found')
    backend = KubernetesBackend(api.url, namespace="jobs")
    with pytest.raises(
        BackendError, match=r"Deployment 'conveyor-worker-batch' in namespace 'jobs' not found"
    ):
        backend.scale("batch", 2)


def test_missing_client_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    monkeypatch.setitem(sys.modules, "kubernetes.client", None)
    monkeypatch.setitem(sys.modules, "kubernetes.config", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'conveyor\[kubernetes\]'"):
        KubernetesBackend("http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match=r"pip install 'conveyor\[kubernetes\]'"):
        KubernetesBackend.from_settings(Settings.model_validate({}))


def test_manager_keeps_its_workers_when_the_api_is_unreachable(app: Conveyor) -> None:
    manager = Manager(app, KubernetesBackend("http://127.0.0.1:9"), ["processing"])
    [view] = manager.tick()
    assert view.error is not None and "unreachable" in view.error
    recorded = status(app)["profiles"]["processing"]
    assert "unreachable" in recorded["error"]
    assert status(app)["decisions"] == []  # nothing was changed


def test_manager_keeps_its_workers_when_the_patch_is_forbidden(
    app: Conveyor, api: ApiServer
) -> None:
    for _ in range(60):
        app.submit("diag.noop", {}, queue="processing")
    manager = Manager(app, KubernetesBackend(api.url, namespace="jobs"), ["processing"])
    api.fail = (403, "forbidden")
    [view] = manager.tick()
    assert view.error is not None and "'get' on 'deployments/scale'" in view.error
    assert [r["method"] for r in api.requests] == ["GET"]  # no patch was tried
    assert status(app)["decisions"] == []


def test_manager_scales_a_kubernetes_deployment_on_backlog(app: Conveyor, api: ApiServer) -> None:
    for _ in range(60):
        app.submit("diag.noop", {}, queue="processing")
    manager = Manager(app, KubernetesBackend(api.url, namespace="jobs"), ["processing"])
    manager.tick()
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    assert [p["body"] for p in patches] == [{"spec": {"replicas": 5}}]
    assert patches[0]["headers"]["content-type"] == "application/merge-patch+json"
    assert "backlog 60" in status(app)["decisions"][0]["reason"]


@pytest.fixture
def fake_docker(tmp_path: Path) -> tuple[Path, Path]:
    """A ``docker`` executable that records its arguments and prints two container ids."""
    record = tmp_path / "calls.jsonl"
    script = tmp_path / "docker"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if 'ps' in sys.argv: print('abc123\\ndef456')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, record


def test_compose_runs_the_exact_commands(fake_docker: tuple[Path, Path]) -> None:
    script, record = fake_docker
    backend = ComposeBackend(
        docker=str(script), file=Path("deploy/docker-compose.workers.yml"), project="conveyor"
    )
    assert backend.current("processing") == 2
    backend.scale("processing", 4)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    base = ["compose", "-f", "deploy/docker-compose.workers.yml", "-p", "conveyor"]
    assert calls == [
        [*base, "ps", "-q", "--status", "running", "worker-processing"],
        [*base, "up", "-d", "--no-recreate", "--scale", "worker-processing=4", "worker-processing"],
    ]


def test_compose_failure_is_a_clear_error(tmp_path: Path) -> None:
    failing = tmp_path / "docker"
    failing.write_text("#!/bin/sh\necho 'no such service' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(BackendError, match=r"failed \(1\): no such service"):
        ComposeBackend(docker=str(failing)).scale("batch", 2)
