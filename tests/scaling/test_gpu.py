"""GPU selection, refusal of GPU-only jobs on CPU workers, and per-process start hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor import Settings
from conveyor.errors import ConfigurationError
from conveyor.monitor.gpu import detect_gpus
from conveyor.testing import WorkerProcess, wait_until
from conveyor.worker.gpu import select_gpus, visible_gpus
from tests.scaling.gpu_app import build

NO_GPU = not detect_gpus()


def test_gpu_selection() -> None:
    names = ["H100", "H100"]
    assert select_gpus("all", names) == [0, 1]
    assert select_gpus("1", names) == [1]
    with pytest.raises(ConfigurationError, match="2 GPU\\(s\\): 0–1"):
        select_gpus("0,5", names)
    with pytest.raises(ConfigurationError, match="no NVIDIA GPU found"):
        select_gpus("all", [])


def test_visible_devices_narrow_what_a_worker_sees() -> None:
    assert visible_gpus(["A", "B"], None) == ["A", "B"]
    assert visible_gpus(["A", "B"], "1") == ["B"]
    assert visible_gpus(["A", "B"], "") == []
    assert visible_gpus(["A", "B"], "-1") == []


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_gpus_flag_without_a_gpu_says_so(broker_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "worker", "--profile", "generation", "--gpus", "all"],
        env={"REDIS_URL": broker_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no NVIDIA GPU found" in done.stderr
    assert "drop --gpus" in done.stderr


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_cpu_worker_routes_gpu_jobs_back_and_hooks_reach_ctx(
    broker_url: str, redis_client: Any, tmp_path: Path
) -> None:
    client = build(Settings(redis_url=broker_url, home=tmp_path / "home"))
    worker = WorkerProcess(
        broker_url,
        profile="processing",
        app="tests.scaling.gpu_app:app",
        log_path=tmp_path / "worker.log",
        concurrency=1,
    )
    with worker:
        refused = client.submit("gpu.only", {})
        wait_until(
            lambda: redis_client.zscore("conveyor:delayed", refused.id) is not None,
            timeout=30,
            what="the GPU job to be routed back",
        )
        assert refused.state().status in ("queued", "scheduled")
        assert "requires a GPU" in worker.log()

        used = client.submit("hooks.model", {}).wait(timeout=30)
        assert used.status == "succeeded"
        assert used.result == {"name": "tiny-model", "loads": 1}


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_gpu_job_fails_with_a_dead_letter_once_it_waited_too_long(
    broker_url: str, redis_client: Any, tmp_path: Path
) -> None:
    from conveyor.broker.inspect import queue_depths
    from conveyor.worker.gpu import waiting_for_gpu

    client = build(Settings(redis_url=broker_url, home=tmp_path / "home"))
    worker = WorkerProcess(
        broker_url,
        profile="processing",
        app="tests.scaling.gpu_app:app",
        log_path=tmp_path / "worker.log",
        env={"CONVEYOR_GPU_WAIT_S": "3"},
    )
    with worker:
        job = client.submit("gpu.only", {})
        wait_until(
            lambda: waiting_for_gpu(client).get("processing") == 1,
            timeout=30,
            what="the job to show as waiting for a GPU",
        )
        state = job.wait(timeout=60)
    assert state.status == "failed"
    assert state.error is not None
    assert state.error.type == "NoGpuAvailable"
    assert "CONVEYOR_GPU_WAIT_S=3" in state.error.message
    dead = {d.name: d.total for d in queue_depths(redis_client, client.topology)}
    assert dead["dead-letter"] == 1
    assert waiting_for_gpu(client) == {}
