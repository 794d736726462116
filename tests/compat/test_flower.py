"""Flower's HTTP API, run as users run it (``celery -A conveyor.celery flower``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.testing import WorkerProcess, wait_until
from tests.stack import free_port

pytest.importorskip("flower")


@pytest.fixture
def flower(broker_url: str, tmp_path: Path) -> Iterator[str]:
    """A Flower server on a free port, with its unauthenticated API on (test only)."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=broker_url, FLOWER_UNAUTHENTICATED_API="true")
    argv = [sys.executable, "-m", "celery", "-A", "conveyor.celery", "flower"]
    log_path = tmp_path / "flower.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*argv, f"--port={port}", "--address=127.0.0.1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log_path.read_text(errors="replace")
        try:
            return httpx.get(f"{url}/healthcheck", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, what="Flower answering")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def test_flower_lists_the_worker_and_its_terminate_cancels_the_job(
    app: Conveyor, worker: WorkerProcess, flower: str
) -> None:
    workers = httpx.get(f"{flower}/api/workers", params={"refresh": "1"}, timeout=60)
    assert workers.status_code == 200, workers.text
    assert worker.name in workers.json()
    job = app.submit("diag.sleep", {"seconds": 60})
    wait_until(lambda: job.state().status == "started", timeout=60, what="the sleep started")
    revoked = httpx.post(
        f"{flower}/api/task/revoke/{job.id}", params={"terminate": "true"}, timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    assert job.wait(timeout=30).status == "cancelled"
