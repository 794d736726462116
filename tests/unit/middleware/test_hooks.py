"""Middleware hooks: what each one sees, and that a failing hook never changes an outcome.

Jobs run in process through the real executor on the test's Valkey
(:func:`conveyor.testing.drain`), so each test takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Middleware, Settings
from conveyor.errors import Defer, PermissionDenied, SkipJob, TransientError
from conveyor.middleware import Outcome
from conveyor.testing import drain


class Input(BaseModel):
    fail_times: int = 0


class Recorder(Middleware):
    """Writes down every hook call as (hook, job type, detail)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def before_enqueue(self, app: Conveyor, submission: Mapping[str, Any]) -> None:
        self.calls.append(("before_enqueue", submission["type"], submission["queue"]))

    def before_job(self, ctx: JobContext, params: Any) -> None:
        self.calls.append(("before_job", ctx.job_type, ctx.attempt))

    def on_error(self, ctx: JobContext, exc: BaseException) -> None:
        self.calls.append(("on_error", ctx.job_type, type(exc).__name__))

    def after_job(self, ctx: JobContext, outcome: Outcome) -> None:
        self.calls.append(("after_job", ctx.job_type, outcome.status))

    def after_final(self, ctx: JobContext, outcome: Outcome) -> None:
        self.calls.append(("after_final", ctx.job_type, outcome.status))


runs: dict[str, int] = {}


def build(settings: Settings, *middleware: Middleware) -> Conveyor:
    app = Conveyor(settings, middleware=middleware)

    @app.job("t.flaky", queue="processing", retries=2, backoff=0.0)
    def flaky(ctx: JobContext, params: Input) -> dict[str, bool]:
        runs[ctx.job_id] = runs.get(ctx.job_id, 0) + 1
        if runs[ctx.job_id] <= params.fail_times:
            raise TransientError(f"failure {runs[ctx.job_id]}")
        return {"done": True}

    return app


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(settings: Settings, redis_client: redis.Redis, recorder: Recorder) -> Conveyor:
    return build(settings, recorder)


def test_a_success_is_seen_by_after_job_and_after_final(app: Conveyor, recorder: Recorder) -> None:
    job = app.submit("t.flaky", {})
    assert drain(app) == [job.id]
    assert job.state().status == "succeeded"
    assert recorder.calls == [
        ("before_enqueue", "t.flaky", "processing"),
        ("before_job", "t.flaky", 0),
        ("after_job", "t.flaky", "succeeded"),
        ("after_final", "t.flaky", "succeeded"),
    ]


def test_after_final_waits_for_the_last_attempt(app: Conveyor, recorder: Recorder) -> None:
    job = app.submit("t.flaky", {"fail_times": 5})
    drain(app, delayed_within_s=60)
    assert job.state().status == "failed"
    outcomes = [(hook, detail) for hook, _, detail in recorder.calls if hook.startswith("after")]
    assert outcomes == [
        ("after_job", "retrying"),
        ("after_job", "retrying"),
        ("after_job", "failed"),
        ("after_final", "failed"),
    ]


class Raising(Middleware):
    """Every hook raises."""

    def before_enqueue(self, app: Conveyor, submission: Mapping[str, Any]) -> None:
        raise RuntimeError("before_enqueue broke")

    def before_job(self, ctx: JobContext, params: Any) -> None:
        raise RuntimeError("before_job broke")

    def on_error(self, ctx: JobContext, exc: BaseException) -> None:
        raise RuntimeError("on_error broke")

    def after_job(self, ctx: JobContext, outcome: Outcome) -> None:
        raise RuntimeError("after_job broke")

    def after_final(self, ctx: JobContext, outcome: Outcome) -> None:
        raise RuntimeError("after_final broke")


def test_a_raising_hook_changes_no_outcome(
    settings: Settings, redis_client: redis.Redis, recorder: Recorder
) -> None:
    app = build(settings, Raising(), recorder)
    ok = app.submit("t.flaky", {})
    failed = app.submit("t.flaky", {"fail_times": 9})
    drain(app, delayed_within_s=60)
    # A raising after_job does not retry a job that succeeded; a raising on_error
    # does not leave a job started forever.
    assert ok.state().status == "succeeded"
    assert ok.state().attempt == 0
    assert failed.state().status == "failed"
    # The hooks after the raising one still ran.
    finals = [detail for hook, _, detail in recorder.calls if hook == "after_final"]
    assert sorted(finals) == ["failed", "succeeded"]


class Gate(Middleware):
    """Skips jobs whose payload says so; defers the first attempt of the others."""

    def __init__(self) -> None:
        self.deferred: set[str] = set()

    def before_job(self, ctx: JobContext, params: Any) -> None:
        if params.fail_times == 99:
            raise SkipJob("tenant over quota")
        if ctx.job_id not in self.deferred:
            self.deferred.add(ctx.job_id)
            raise Defer(30, "waiting for a licence")


def test_before_job_can_skip_or_defer(settings: Settings, redis_client: redis.Redis) -> None:
    app = build(settings, Gate())
    skipped = app.submit("t.flaky", {"fail_times": 99})
    later = app.submit("t.flaky", {})
    drain(app)
    state = skipped.state()
    assert state.status == "cancelled"
    assert state.message == "tenant over quota"
    assert skipped.id not in runs
    deferred = later.state()
    assert deferred.status == "scheduled"
    assert deferred.due_at is not None and deferred.attempt == 0
    drain(app, delayed_within_s=60)
    assert later.state().status == "succeeded"
    assert later.state().attempt == 0


class Quota(Middleware):
    def before_enqueue(self, app: Conveyor, submission: Mapping[str, Any]) -> None:
        if submission["labels"].get("tenant") == "over":
            raise PermissionDenied("tenant 'over' has used its quota")


def test_before_enqueue_refuses_with_a_conveyor_error(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = build(settings, Quota())
    with pytest.raises(PermissionDenied, match="quota"):
        app.submit("t.flaky", {}, tenant="over")
    assert drain(app) == []
    allowed = app.submit("t.flaky", {}, tenant="fine")
    assert drain(app) == [allowed.id]


def test_drain_leaves_jobs_of_other_applications(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    mine = build(settings)
    other = Conveyor(settings)

    @other.job("other.only", queue="processing")
    def only(ctx: JobContext, params: Input) -> None:
        return None

    foreign = other.submit("other.only", {})
    own = mine.submit("t.flaky", {})
    assert drain(mine) == [own.id]
    assert foreign.state().status == "queued"
    assert drain(other) == [foreign.id]
