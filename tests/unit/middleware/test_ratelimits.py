"""RateLimits: a job over its type's limit goes back for later, using no retry."""

from __future__ import annotations

import time

import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings
from conveyor.testing import drain


class Empty(BaseModel):
    pass


def test_a_job_over_the_limit_is_deferred_not_run(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = Conveyor(settings)

    @app.job("t.limited", queue="processing", rate_limit="1/m")
    def limited(ctx: JobContext, params: Empty) -> None:
        return None

    first, second = app.submit("t.limited", {}), app.submit("t.limited", {})
    assert drain(app) == [first.id, second.id]
    assert first.state().status == "succeeded"
    held = second.state()
    assert held.status == "scheduled" and held.attempt == 0
    # Back when the window frees a slot, about a minute from the first start.
    assert held.due_at is not None and held.due_at > time.time() + 30
