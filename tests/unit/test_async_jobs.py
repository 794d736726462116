"""``async def`` jobs: run on the process's event loop, with progress, retries and limits.

Jobs run in process through the real executor on the test's Valkey
(:func:`conveyor.testing.drain`), so each test takes milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings
from conveyor.errors import PermanentError, TransientError
from conveyor.testing import drain, wait_until
from conveyor.worker import aio


class Input(BaseModel):
    fail_times: int = 0
    seconds: float = 0.0


runs: dict[str, int] = {}
seen: dict[str, object] = {}
cleaned: list[str] = []


def build(settings: Settings) -> Conveyor:
    app = Conveyor(settings)

    @app.periodic("t.every-hour", every="1h")
    @app.job("t.fetch", queue="processing", retries=2, backoff=0.0)
    async def fetch(ctx: JobContext, params: Input) -> dict[str, int]:
        runs[ctx.job_id] = runs.get(ctx.job_id, 0) + 1
        seen[ctx.job_id] = (asyncio.get_running_loop(), threading.current_thread().name)
        await asyncio.sleep(0.001)
        ctx.progress(50, stage="half", message="awaited once")
        if runs[ctx.job_id] <= params.fail_times:
            raise TransientError(f"failure {runs[ctx.job_id]}")
        return {"runs": runs[ctx.job_id]}

    @app.job("t.broken", queue="processing", retries=3)
    async def broken(ctx: JobContext, params: Input) -> None:
        await asyncio.sleep(0)
        raise PermanentError("no such file")

    @app.job("t.slow", queue="processing", retries=0, soft_time_limit=0.2, time_limit=5)
    async def slow(ctx: JobContext, params: Input) -> None:
        try:
            await asyncio.sleep(params.seconds)
        finally:
            cleaned.append(ctx.job_id)

    @app.job("t.stubborn", queue="processing", retries=0, soft_time_limit=0.1, time_limit=0.4)
    async def stubborn(ctx: JobContext, params: Input) -> None:
        # Ignores its cancellation, but ends by itself so no task outlives the test long.
        deadline = time.monotonic() + params.seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.02)

    @app.job("t.self-cancel", queue="processing")
    async def self_cancel(ctx: JobContext, params: Input) -> None:
        app.get_job(ctx.job_id).cancel()
        ctx.progress(10)

    return app


@pytest.fixture
def app(settings: Settings, redis_client: redis.Redis) -> Conveyor:
    return build(settings)


def test_an_async_job_succeeds_on_the_process_loop_with_its_progress(app: Conveyor) -> None:
    first, second = app.submit("t.fetch", {}), app.submit("t.fetch", {})
    assert drain(app) == [first.id, second.id]
    state = first.state()
    assert state.status == "succeeded"
    assert state.result == {"runs": 1}
    assert (state.stage, state.message) == ("half", "awaited once")
    # One loop for the process, reused, in its own thread.
    assert seen[first.id] == seen[second.id]
    loop, thread = seen[first.id]  # type: ignore[misc]
    assert loop is aio.process_loop() and thread == "conveyor-aio"


def test_an_async_job_is_retried_then_succeeds(app: Conveyor) -> None:
    job = app.submit("t.fetch", {"fail_times": 2})
    assert drain(app, delayed_within_s=60) == [job.id] * 3
    state = job.state()
    assert (state.status, state.attempt, state.result) == ("succeeded", 2, {"runs": 3})


def test_an_async_permanent_error_fails_at_once(app: Conveyor) -> None:
    job = app.submit("t.broken", {})
    assert drain(app, delayed_within_s=60) == [job.id]
    state = job.state()
    assert state.status == "failed" and state.error is not None
    assert (state.error.type, state.error.message) == ("PermanentError", "no such file")
    assert "in broken\n    raise PermanentError" in (state.error.traceback or "")


def test_an_async_job_is_cancelled_at_its_soft_time_limit(app: Conveyor) -> None:
    job = app.submit("t.slow", {"seconds": 30})
    started = time.monotonic()
    drain(app)
    assert time.monotonic() - started < 5
    state = job.state()
    assert state.status == "failed" and state.error is not None
    assert state.error.type == "SoftTimeLimitExceeded"
    assert state.error.message == "soft time limit (0.2s) exceeded"
    assert cleaned == [job.id]  # its finally block ran


def test_a_submissions_soft_limit_applies_to_an_async_job(app: Conveyor) -> None:
    job = app.submit("t.slow", {"seconds": 30}, soft_time_limit=0.1, time_limit=1)
    drain(app)
    state = job.state()
    assert state.error is not None and state.error.message == "soft time limit (0.1s) exceeded"


def test_an_async_job_ignoring_its_cancellation_ends_at_the_hard_limit(app: Conveyor) -> None:
    job = app.submit("t.stubborn", {"seconds": 1.5})
    drain(app)
    state = job.state()
    assert state.status == "failed" and state.error is not None
    assert state.error.type == "TimeLimitExceeded"
    assert "abandoned" in state.error.message


def test_an_async_job_stops_at_its_progress_once_cancelled(app: Conveyor) -> None:
    job = app.submit("t.self-cancel", {})
    drain(app)
    assert job.state().status == "cancelled"


def test_a_running_async_job_is_cancelled_at_once(app: Conveyor) -> None:
    job = app.submit("t.slow", {"seconds": 30}, soft_time_limit=20, time_limit=25)
    ran = threading.Thread(target=drain, args=(app,))
    ran.start()

    wait_until(lambda: job.id in aio._running, timeout=10)
    job.cancel()
    assert aio.cancel_running(job.id)
    ran.join(timeout=10)
    assert job.state().status == "cancelled"
    assert cleaned[-1] == job.id


def test_periodic_above_an_async_job_schedules_it(app: Conveyor) -> None:
    assert app.schedules()["t.every-hour"].job == "t.fetch"
