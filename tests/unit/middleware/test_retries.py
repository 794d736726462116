"""Retries and DeadLetters: transient failures come back after their backoff steps,
then the job fails for good and its dead-letter message is published."""

from __future__ import annotations

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Middleware, Settings, keys
from conveyor.engine.transport import LEVELS_URGENT_FIRST
from conveyor.errors import ConfigurationError, TransientError
from conveyor.middleware import Outcome, Retries, default_middleware
from conveyor.testing import drain
from conveyor.topology import DEAD_LETTER


class Empty(BaseModel):
    pass


class Outcomes(Middleware):
    def __init__(self) -> None:
        self.seen: list[Outcome] = []

    def after_job(self, ctx: JobContext, outcome: Outcome) -> None:
        self.seen.append(outcome)


def dead_letters(client: redis.Redis) -> int:
    return sum(int(client.llen(keys.queue_list(DEAD_LETTER, lvl))) for lvl in LEVELS_URGENT_FIRST)


def test_retries_follow_the_backoff_then_the_job_is_dead_lettered(
    settings: Settings, redis_client: redis.Redis
) -> None:
    outcomes = Outcomes()
    app = Conveyor(settings, middleware=[outcomes])

    @app.job("t.down", queue="processing", retries=2, backoff=[1.0, 4.0])
    def down(ctx: JobContext, params: Empty) -> None:
        raise TransientError("upstream down")

    job = app.submit("t.down", {})
    assert drain(app, delayed_within_s=60) == [job.id] * 3
    assert [o.status for o in outcomes.seen] == ["retrying", "retrying", "failed"]
    first, second = (o.retry_in_s for o in outcomes.seen[:2])
    assert first is not None and 0.9 <= first <= 1.1  # the step, spread by ±10% jitter
    assert second is not None and 3.6 <= second <= 4.4
    state = job.state()
    assert state.status == "failed" and state.attempt == 2
    assert dead_letters(redis_client) == 1


def test_without_retries_every_failure_is_final(
    settings: Settings, redis_client: redis.Redis
) -> None:
    defaults = [mw for mw in default_middleware() if not isinstance(mw, Retries)]
    app = Conveyor(settings, default_middleware=defaults, packs=[])

    @app.job("t.once", queue="processing")
    def once(ctx: JobContext, params: Empty) -> None:
        raise TransientError("would have been retried")

    job = app.submit("t.once", {})
    assert drain(app, delayed_within_s=60) == [job.id]
    assert job.state().status == "failed" and job.state().attempt == 0
    with pytest.raises(ConfigurationError, match="Retries"):
        app.job("t.retried", retries=3)
