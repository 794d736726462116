"""Cancellation: a running job that never reports progress is terminated after the grace
period and ends ``cancelled``; revocations survive worker restarts; the CLI says when
there is nothing to cancel."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, keys
from conveyor.testing import WorkerProcess, wait_until
from tests.cli import run_conveyor


@pytest.fixture(scope="module", params=["prefork", "procs"])
def grace_worker(
    broker_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WorkerProcess]:
    """A worker on ``processing`` whose cancelled jobs get one second to stop by themselves
    (each pool terminates them its own way)."""
    process = WorkerProcess(
        broker_url,
        profile="processing",
        concurrency=1,
        pool=request.param,
        queues=["processing"],
        env={"CONVEYOR_CANCEL_GRACE_S": "1"},
        log_path=tmp_path_factory.mktemp("cancel") / "worker.log",
    )
    with process:
        yield process


def test_running_job_without_progress_is_terminated_after_the_grace_period(
    app: Conveyor, grace_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.sleep", {"seconds": 120, "steps": 1})  # no progress until the end
    wait_until(lambda: job.state().status == "started", timeout=30, what="the job to start")
    assert job.cancel()
    wait_until(
        lambda: f"job {job.id} was cancelled and still runs" in grace_worker.log(),
        timeout=20,
        what="the worker to terminate the job",
    )
    # The message is acknowledged (not re-queued), the job stays cancelled, the pool recovers.
    wait_until(lambda: redis_client.hlen("unacked") == 0, timeout=20, what="the ack")
    after = app.submit("diag.noop", {})
    assert after.wait(timeout=30).status == "succeeded"
    state = job.state()
    assert state.status == "cancelled" and state.deliveries == 1 and state.error is None
    assert redis_client.zscore(keys.REVOKED, job.id) is not None


def test_cooperative_job_stops_before_the_grace_period(
    app: Conveyor, grace_worker: WorkerProcess
) -> None:
    job = app.submit("diag.sleep", {"seconds": 30, "steps": 300})
    wait_until(lambda: job.state().progress > 0, timeout=30, what="progress")
    assert job.cancel()
    assert job.wait(timeout=10).status == "cancelled"
    wait_until(lambda: f"job {job.id} stopped: cancelled" in grace_worker.log(), timeout=10)
    assert f"job {job.id} was cancelled and still runs" not in grace_worker.log()


def test_revocation_survives_a_worker_restart(
    app: Conveyor, broker_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Cancelled while no worker consumes its queue; then even its live state is gone.
    job = app.submit("diag.noop", {}, queue="batch")
    assert job.cancel()
    redis_client.delete(keys.job(job.id))
    with WorkerProcess(
        broker_url, profile="batch", concurrency=1, queues=["batch"], log_path=tmp_path / "w.log"
    ) as worker:
        wait_until(
            lambda: f"Discarding revoked task: diag.noop[{job.id}]" in worker.log(),
            timeout=30,
            what="the worker to discard the revoked job",
        )
        wait_until(lambda: redis_client.hlen("unacked") == 0, timeout=10, what="the ack")
    assert redis_client.hget(keys.job(job.id), "status") in (None, b"cancelled")
    assert not redis_client.hexists(keys.job(job.id), "started_at")


def _cli(broker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` (in this process: the same command, exit codes and output)."""
    return run_conveyor(*args, env={"REDIS_URL": broker_url})


def test_cancel_unknown_or_finished_job_says_so(
    app: Conveyor, broker_url: str, grace_worker: WorkerProcess
) -> None:
    unknown = str(uuid.uuid4())
    result = _cli(broker_url, "cancel", unknown)
    assert result.returncode == 2
    assert f"no job {unknown}" in result.stderr + result.stdout

    done = app.submit("diag.noop", {})
    assert done.wait(timeout=30).status == "succeeded"
    assert not done.cancel()
    result = _cli(broker_url, "cancel", done.id)
    assert result.returncode == 1
    assert "already succeeded; nothing to cancel" in result.stdout
