"""``conveyor flower`` serves Flower's HTTP API on the configured broker (conveyor[flower])."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conveyor import Conveyor
from conveyor.testing import WorkerProcess, wait_until
from tests.stack import free_port

pytest.importorskip("flower", reason="Flower is an optional extra: pip install 'conveyor[flower]'")


def test_flower_serves_its_api_with_workers_and_tasks(
    app: Conveyor, broker_url: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "flower.log"
    env = dict(
        os.environ,
        REDIS_URL=broker_url,
        CONVEYOR_HOME=str(tmp_path),
        FLOWER_UNAUTHENTICATED_API="true",
    )
    with open(log, "wb") as out:
        flower = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "flower", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> httpx.Response | None:
        try:
            return httpx.get(base + path, timeout=10)
        except httpx.TransportError:
            return None

    try:
        with WorkerProcess(broker_url, log_path=tmp_path / "worker.log") as worker:
            health = wait_until(lambda: get("/healthcheck"), timeout=60, what=f"flower ({log})")
            assert health.text == "OK"

            def worker_listed() -> bool:
                answer = get("/api/workers?refresh=1")
                return answer is not None and worker.name in answer.json()

            wait_until(worker_listed, timeout=60, interval=0.5, what="the worker in /api/workers")

            def events_seen() -> bool:
                # Flower's event receiver is subscribed once a worker heartbeat reached it;
                # a job's events sent before that would never reach it.
                answer = get("/api/workers?status=1")
                return answer is not None and bool(answer.json().get(worker.name))

            wait_until(events_seen, timeout=60, interval=0.5, what="the worker's heartbeat")
            job = app.submit("diag.noop", {})
            job.wait(timeout=30)

            def task_listed() -> bool:
                answer = get("/api/tasks")
                return answer is not None and job.id in answer.json()

            wait_until(task_listed, timeout=30, interval=0.5, what="the job in /api/tasks")

        # With the worker gone, its queue fills: the length counts every priority's list.
        for priority in (0, 3, 10):
            app.submit("diag.noop", {}, queue="processing", priority=priority)
        lengths = get("/api/queues/length")
        assert lengths is not None and lengths.status_code == 200, lengths
        by_name = {q["name"]: q["messages"] for q in lengths.json()["active_queues"]}
        assert by_name["processing"] == 3
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)
