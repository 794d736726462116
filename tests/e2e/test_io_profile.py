"""The I/O profile: one threads-pool worker runs sync and async sleeping jobs at once.

The worker loads :mod:`conveyor.benchmarks.io`'s app (``bench.io.sleep``,
``bench.io.async_sleep`` on the ``io`` queue) and a ``conveyor.toml`` declaring
``[profiles.io]`` with ``pool = "threads"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings
from conveyor.benchmarks.io import APP, ASYNC, SYNC, io_config, make_app
from conveyor.testing import WorkerProcess, wait_until

THREADS = 16


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return io_config(tmp_path_factory.mktemp("io") / "conveyor.toml", THREADS)


@pytest.fixture(scope="module")
def io_worker(
    broker_url: str, config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One ``conveyor worker --profile io`` (threads pool, 16 threads)."""
    log = tmp_path_factory.mktemp("io-worker") / "worker.log"
    process = WorkerProcess(
        broker_url,
        profile="io",
        concurrency=THREADS,
        app=APP,
        log_path=log,
        env={"CONVEYOR_CONFIG": str(config)},
    )
    with process:
        yield process


@pytest.fixture
def app(
    broker_url: str,
    config: Path,
    tmp_path: Path,
    redis_client: redis.Redis,
    io_worker: WorkerProcess,
) -> Conveyor:
    return make_app(Settings(redis_url=broker_url, home=tmp_path / "home", config_file=config))


def test_sync_and_async_jobs_run_at_once_on_the_io_profile(app: Conveyor) -> None:
    jobs = [app.submit(kind, {"seconds": 1.0}) for kind in (SYNC, ASYNC) for _ in range(8)]
    states = [job.wait(timeout=60) for job in jobs]
    assert [s.status for s in states] == ["succeeded"] * 16
    first_end = min(s.finished_at or 0.0 for s in states)
    running_together = [s for s in states if (s.started_at or 0.0) < first_end]
    # Sixteen 1 s jobs on sixteen threads: most of them overlap (allowing a loaded machine).
    assert len(running_together) >= 8
    assert {s.type for s in running_together} == {SYNC, ASYNC}


def test_a_running_async_job_is_cancelled_at_once(app: Conveyor, io_worker: WorkerProcess) -> None:
    job = app.submit(ASYNC, {"seconds": 30})
    wait_until(lambda: job.state().status == "started", timeout=30)
    job.cancel()
    # Its coroutine is cancelled on the announcement: no progress report needed.
    wait_until(lambda: f"job {job.id} stopped: cancelled" in io_worker.log(), timeout=10)
    assert job.state().status == "cancelled"


def test_an_async_jobs_soft_limit_applies_in_the_threads_pool(app: Conveyor) -> None:
    job = app.submit(ASYNC, {"seconds": 30}, soft_time_limit=0.5, time_limit=5)
    state = job.wait(timeout=30)
    assert state.status == "failed" and state.error is not None
    assert state.error.type == "SoftTimeLimitExceeded"
