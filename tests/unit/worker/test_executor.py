"""One delivery's outcome: progress, retries, permanent failure, cancellation, results.

Jobs run in process through the real executor on the test's Valkey
(:func:`conveyor.testing.drain`): no worker process, so each test takes as long
as its job. What needs a process (time limits that kill a pool child, heartbeats,
worker boot) stays in ``tests/e2e`` and ``tests/chaos``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from conveyor import Conveyor, Settings, delayed
from conveyor.middleware.gpu import is_gpu_oom
from conveyor.store import open_store
from conveyor.store.recorder import Recorder
from conveyor.testing import drain, wait_until
from conveyor.worker.executor import Execution
from tests.chaos.faults_app import CIRCULAR, TUPLE_KEYS, make_app
from tests.reliability.apps import CudaOutOfMemoryLike, register


@contextmanager
def draining(app: Conveyor, **options: Any) -> Iterator[list[str]]:
    """Run ``drain(app)`` in a thread for the block (a job runs while the test watches it);
    yields the ids it ran, filled in once the block ends."""
    ran: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ran.extend(drain(app, **options))
        except BaseException as exc:  # re-raised in the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield ran
    finally:
        thread.join(timeout=60)
        assert not thread.is_alive(), "drain did not finish"
    if errors:
        raise errors[0]


@pytest.fixture
def worker_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The executor's log lines (what a worker prints about its jobs)."""
    caplog.set_level(logging.INFO, logger="conveyor.worker")
    return caplog


def test_progress_events_arrive_in_order(app: Conveyor) -> None:
    job = app.submit("diag.sleep", {"seconds": 0.6, "steps": 6})
    live = job.events(timeout=30)
    first = next(live)  # subscribed: no event can be missed from here on
    with draining(app) as ran:
        events = [first, *live]
    assert ran == [job.id]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "state" and kinds[-1] == "succeeded"
    progress = [e for e in events if e["type"] == "progress"]
    assert [round(e["progress"]) for e in progress][-3:] == [67, 83, 100]
    assert [e["progress"] for e in progress] == sorted(e["progress"] for e in progress)
    assert progress[-1]["stage"] == "step 6/6" and "slept" in progress[-1]["message"]
    assert job.state().result == {"slept_s": 0.6}


def test_transient_errors_retry_with_the_same_id(app: Conveyor) -> None:
    job = app.submit("diag.flaky", {"fail_times": 2})
    # The retries' backoff (0.2 s, 0.4 s) is run at once.
    assert drain(app, delayed_within_s=5) == [job.id] * 3
    state = job.state()
    assert state.status == "succeeded"
    assert state.attempt == 2 and state.result == {"attempts": 3}
    assert state.error is None


def test_permanent_error_fails_at_once_with_its_traceback(app: Conveyor) -> None:
    job = app.submit("diag.flaky", {"fail_times": 1, "permanent": True})
    assert drain(app, delayed_within_s=5) == [job.id]
    state = job.state()
    assert state.status == "failed" and state.attempt == 0
    assert state.error is not None and state.error.type == "PermanentError"
    assert "Traceback" in (state.error.traceback or "")


def test_running_job_cancelled_stops_at_next_progress(
    app: Conveyor, worker_log: pytest.LogCaptureFixture
) -> None:
    job = app.submit("diag.sleep", {"seconds": 30, "steps": 300})
    with draining(app):
        wait_until(lambda: job.state().progress > 0, timeout=30, what="the job to report progress")
        assert job.cancel()
        state = job.wait(timeout=10)
    assert state.status == "cancelled" and state.progress < 100
    assert f"job {job.id} stopped: cancelled" in worker_log.text


def test_queued_job_cancelled_never_starts(
    app: Conveyor, worker_log: pytest.LogCaptureFixture
) -> None:
    job = app.submit("diag.noop", {})
    assert job.cancel()
    drain(app)
    assert f"job {job.id} is already cancelled" in worker_log.text
    assert job.state().deliveries == 0


def test_gpu_oom_is_told_by_name_and_message() -> None:
    assert is_gpu_oom(CudaOutOfMemoryLike("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_gpu_oom(RuntimeError("CUDA error: out of memory"))
    assert not is_gpu_oom(MemoryError("out of memory"))
    assert not is_gpu_oom(ValueError("bad input"))


def test_gpu_out_of_memory_retries_on_cpu(settings: Settings, redis_client: redis.Redis) -> None:
    """A ``gpu="prefer"`` job that runs out of GPU memory is retried on CPU, and the device
    each delivery ran on is recorded in the job's state."""
    app = Conveyor(settings)
    register(app)
    # The job's first delivery, as a GPU worker runs it (this machine may have no GPU).
    job = app.submit("gp.model", {}, delay=3600)
    delayed.unschedule(redis_client, job.id)
    meta = {"attempt": 0, "queue": "batch", "priority": 1, "device": "cuda"}
    Execution(app, app.definition("gp.model"), job.id, {}, meta, "gpu-worker@test").run()
    state = job.state()
    assert state.status == "retrying" and state.device == "cuda"
    assert state.error is not None and "retrying on CPU" in state.error.message
    # A CPU runner takes the retry: ctx.device says cpu, and the state records it.
    assert drain(app, queues=["batch"], delayed_within_s=0) == [job.id]
    final = job.state()
    assert final.status == "succeeded", final
    assert final.attempt == 1 and final.device == "cpu" and final.result == {"device": "cpu"}


@pytest.mark.parametrize("job_type", [CIRCULAR, TUPLE_KEYS])
def test_a_result_json_cannot_encode_fails_the_job(
    settings: Settings, redis_client: redis.Redis, job_type: str
) -> None:
    app = make_app(settings)
    job = app.submit(job_type, {})
    assert drain(app) == [job.id]
    state = job.state()
    assert state.status == "failed"
    assert state.error is not None and state.error.type == "ResultNotSerializable"
    assert "JSON cannot encode" in state.error.message
    # The recorder files the dead letter from the failed event.
    store = open_store(settings)
    try:
        store.upgrade()
        Recorder(store, app.redis, consumer="test").drain()
        letter = store.get_dead_letter(state.id)
    finally:
        store.close()
    assert letter is not None and letter.error_type == "ResultNotSerializable"
