"""A built-in middleware that raises is logged and skipped: the job's outcome is what
it would have been without that middleware."""

from __future__ import annotations

from typing import Any

import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Middleware, Settings
from conveyor.errors import TransientError
from conveyor.middleware import DeadLetters, Outcome, RateLimits, default_middleware
from conveyor.middleware.policy import Policy
from conveyor.testing import drain
from conveyor.worker.executor import Execution


class Input(BaseModel):
    fail: bool = False


class BrokenRateLimits(RateLimits):
    def before_start(self, execution: Execution) -> bool:
        raise RuntimeError("rate limits broke")


class BrokenDeadLetters(DeadLetters):
    def after_failed(self, execution: Execution, dead_letter: dict[str, Any]) -> None:
        raise RuntimeError("dead letters broke")


class BrokenDecider(Policy):
    def on_failure(
        self, execution: Execution, exc: BaseException, started_at: float
    ) -> Outcome | None:
        raise RuntimeError("decider broke")


class Finals(Middleware):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def after_final(self, ctx: JobContext, outcome: Outcome) -> None:
        self.seen.append(outcome.status)


def test_raising_built_ins_change_no_outcome(settings: Settings, redis_client: redis.Redis) -> None:
    replaced = {RateLimits: BrokenRateLimits(), DeadLetters: BrokenDeadLetters()}
    defaults = [replaced.get(type(mw), mw) for mw in default_middleware()]
    finals = Finals()
    app = Conveyor(
        settings, default_middleware=[BrokenDecider(), *defaults], middleware=[finals], packs=[]
    )
    attempts: dict[str, int] = {}

    @app.job("t.job", queue="processing", rate_limit="1000/s", retries=1, backoff=0.0)
    def run(ctx: JobContext, params: Input) -> str:
        attempts[ctx.job_id] = ctx.attempt
        if params.fail:
            raise TransientError("down")
        return "done"

    ok = app.submit("t.job", {})
    failed = app.submit("t.job", {"fail": True})
    drain(app, delayed_within_s=60)
    assert ok.state().status == "succeeded" and ok.state().result == "done"
    # The broken decider before Retries does not stop the retry; the broken dead
    # letters do not stop the failure from being recorded and announced to hooks.
    assert failed.state().status == "failed" and attempts[failed.id] == 1
    assert sorted(finals.seen) == ["failed", "succeeded"]
