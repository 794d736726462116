"""The Kubernetes and compose back ends, checked on the exact requests and commands they make."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.scaling import status
from conveyor.scaling.backends.base import BackendError
from conveyor.scaling.backends.compose import ComposeBackend
from conveyor.scaling.backends.kubernetes import KubernetesBackend
from conveyor.scaling.manager import Manager


class ApiServer:
    """A tiny HTTP server standing in for the API server's scale subresource."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replicas = 2
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                if body is not None:
                    outer.replicas = body["spec"]["replicas"]
                data = json.dumps({"kind": "Scale", "spec": {"replicas": outer.replicas}}).encode()
                self.send_response(200)
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
    assert (get["method"], get["path"]) == ("GET", path)
    assert (patch["method"], patch["path"]) == ("PATCH", path)
    assert patch["body"] == {"spec": {"replicas": 7}}
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert patch["headers"]["Authorization"] == "Bearer s3cret"
    assert backend.current("generation") == 7


def test_kubernetes_names_come_from_the_template(api: ApiServer) -> None:
    backend = KubernetesBackend(api.url, namespace="ns", deployment="{profile}-workers")
    backend.scale("batch", 0)
    assert api.requests[0]["path"] == "/apis/apps/v1/namespaces/ns/deployments/batch-workers/scale"


def test_unreachable_kubernetes_api_is_a_clear_error() -> None:
    backend = KubernetesBackend("http://127.0.0.1:9", namespace="jobs")
    with pytest.raises(BackendError, match=r"kubernetes API unreachable at http://127\.0\.0\.1:9"):
        backend.current("processing")
    with pytest.raises(BackendError, match="negative"):
        backend.scale("processing", -1)


def test_manager_keeps_its_workers_when_the_api_is_unreachable(app: Conveyor) -> None:
    manager = Manager(app, KubernetesBackend("http://127.0.0.1:9"), ["processing"])
    [view] = manager.tick()
    assert view.error is not None and "unreachable" in view.error
    recorded = status(app)["profiles"]["processing"]
    assert "unreachable" in recorded["error"]
    assert status(app)["decisions"] == []  # nothing was changed


def test_manager_scales_a_kubernetes_deployment_on_backlog(app: Conveyor, api: ApiServer) -> None:
    for _ in range(60):
        app.submit("diag.noop", {}, queue="processing")
    manager = Manager(app, KubernetesBackend(api.url, namespace="jobs"), ["processing"])
    manager.tick()
    patches = [r for r in api.requests if r["method"] == "PATCH"]
    assert [p["body"] for p in patches] == [{"spec": {"replicas": 5}}]
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
