"""API fixtures: a real uvicorn server on a free port, a worker and a recorder subprocess.

One server, worker and recorder serve the whole package (starting them is the
slow part); tests use their own keys and jobs, so they do not disturb each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.api import create_app
from conveyor.testing import WorkerProcess
from tests.stack import Role, ServerThread, free_port, platform

RATE_LIMIT = "40/s"


@dataclass
class Api:
    """The running API: its base URL, the app behind it, and keys by role."""

    url: str
    app: Conveyor
    keys: dict[str, str]
    home: Path

    def client(self, role: str | None = "a") -> httpx.Client:
        """A client sending the key of ``role`` (None: no key)."""
        headers = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="package")
def api(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Server + one processing worker + the recorder, on a clean keyspace."""
    home = tmp_path_factory.mktemp("api-home")
    roles: dict[str, Role] = {
        "a": ("tenant-a", ["submit", "read"], {"queues": ["critical"]}),
        "b": ("tenant-b", ["submit", "read"]),
        "reader": ("tenant-a", ["read"]),
        "admin": ("ops", ["admin"]),
        "burst": ("tenant-c", ["submit", "read"]),
    }
    settings = {"api_rate_limit": RATE_LIMIT, "api_key_cache_s": 0.5}
    with platform(broker_url, home, roles, **settings) as base:
        env = dict(os.environ, REDIS_URL=broker_url, CONVEYOR_HOME=str(home))
        log = home / "recorder.log"
        with open(log, "wb") as out:
            recorder = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "recorder"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        port = free_port()
        worker = WorkerProcess(
            broker_url,
            profile="processing",
            concurrency=2,
            queues=["processing", "batch"],
            log_path=home / "worker.log",
            env={"CONVEYOR_HOME": str(home)},
        )
        try:
            with ServerThread(create_app(base.app, auth=True), port), worker:
                yield Api(f"http://127.0.0.1:{port}", base.app, base.keys, home)
        finally:
            recorder.terminate()
            recorder.wait(timeout=15)
