"""The ``procs`` pool: solo consumers under a supervisor that keeps prefork's guarantees."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
import redis

from conveyor import Conveyor, keys
from conveyor.errors import ConfigurationError
from conveyor.testing import WorkerProcess, wait_until
from conveyor.topology import apply_overrides, default_topology
from conveyor.worker.procs import consumer_name


def test_consumers_are_named_after_the_worker() -> None:
    assert consumer_name("fast@host", 1) == "fast@host"
    assert consumer_name("fast@host", 3) == "fast.3@host"


def test_a_profile_may_choose_the_procs_pool() -> None:
    procs = {"profiles": {"processing": {"pool": "procs"}}}
    assert apply_overrides(default_topology(), procs).profile("processing").pool == "procs"
    with pytest.raises(ConfigurationError, match="prefork, procs, threads, solo"):
        apply_overrides(default_topology(), {"profiles": {"processing": {"pool": "fork"}}})


def test_a_killed_consumer_hands_its_job_back_at_once_and_is_replaced(
    app: Conveyor, broker_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Heartbeats of 60 s: a rescue by lease expiry could not happen within this test.
    env = {"CONVEYOR_HEARTBEAT_S": "60"}
    with WorkerProcess(
        broker_url, concurrency=2, pool="procs", log_path=tmp_path / "w.log", env=env
    ) as worker:
        supervisor = psutil.Process(worker.pid)
        wait_until(lambda: len(supervisor.children()) == 2, timeout=30, what="two consumers")
        job = app.submit("diag.sleep", {"seconds": 3})
        wait_until(lambda: job.state().status == "started", timeout=30, what="the job to start")
        name = job.state().worker
        assert name is not None
        pid = int(redis_client.hget(keys.worker(name), "pid") or 0)  # type: ignore[arg-type]
        assert pid in {child.pid for child in supervisor.children()}
        os.kill(pid, signal.SIGKILL)
        state = job.wait(timeout=30)
        assert state.status == "succeeded" and state.deliveries == 2
        wait_until(lambda: len(supervisor.children()) == 2, timeout=30, what="a new consumer")
        assert pid not in {child.pid for child in supervisor.children()}
        assert app.submit("diag.noop", {}).wait(timeout=30).status == "succeeded"
        assert "exited (-9) under job" in worker.log()
