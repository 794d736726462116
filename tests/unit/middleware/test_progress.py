"""The Progress middleware: ``ctx.progress()`` writes the report and stops a cancelled job;
without it progress is a no-op that never fails the job."""

from __future__ import annotations

import logging

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings
from conveyor.middleware import Progress, default_middleware
from conveyor.testing import drain
from conveyor.worker.executor import Execution


class Input(BaseModel):
    cancel: bool = False


def build(settings: Settings, progress: Progress | None = Progress()) -> tuple[Conveyor, dict]:
    defaults = [mw for mw in default_middleware() if not isinstance(mw, Progress)]
    if progress is not None:
        defaults.append(progress)
    app = Conveyor(settings, default_middleware=defaults, packs=[])
    seen: dict[str, object] = {}

    @app.job("t.report", queue="processing")
    def report(ctx: JobContext, params: Input) -> str:
        if params.cancel:
            assert app.get_job(ctx.job_id).cancel()
        ctx.progress(40, stage="half", message="on the way")
        state = app.get_job(ctx.job_id).state()
        seen["progress"], seen["stage"] = state.progress, state.stage
        return "ran to the end"

    return app, seen


def test_progress_is_recorded(settings: Settings, redis_client: redis.Redis) -> None:
    app, seen = build(settings)
    job = app.submit("t.report", {})
    drain(app)
    assert seen == {"progress": 40.0, "stage": "half"}
    assert job.state().status == "succeeded"


def test_a_cancelled_job_stops_at_its_next_report(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app, seen = build(settings)
    job = app.submit("t.report", {"cancel": True})
    drain(app)
    assert seen == {}  # stopped inside ctx.progress()
    assert job.state().status == "cancelled"


def test_without_it_progress_writes_nothing_and_the_job_goes_on(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app, seen = build(settings, progress=None)
    assert app.hooks.on_progress == []
    plain = app.submit("t.report", {})
    cancelled = app.submit("t.report", {"cancel": True})
    drain(app)
    assert seen == {"progress": 0.0, "stage": None}
    assert plain.state().status == "succeeded"
    # Ran to its end; its cancellation still stands (the success is refused).
    assert cancelled.state().status == "cancelled"


def test_the_percent_is_checked_with_or_without_it(
    settings: Settings, redis_client: redis.Redis
) -> None:
    for progress in (Progress(), None):
        app, _ = build(settings, progress)
        execution = Execution(app, app.definition("t.report"), "id", {}, {}, "w")
        with pytest.raises(ValueError, match="between 0 and 100"):
            JobContext(execution).progress(120)


class BrokenProgress(Progress):
    def on_progress(
        self, execution: Execution, percent: float, stage: str | None, message: str | None
    ) -> bool:
        raise RuntimeError("progress broke")


def test_a_raising_progress_is_logged_and_the_job_goes_on(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = build(settings, BrokenProgress())
    job = app.submit("t.report", {})
    with caplog.at_level(logging.ERROR, "conveyor.middleware"):
        drain(app)
    assert job.state().status == "succeeded"
    assert "BrokenProgress.on_progress failed" in caplog.text
