"""DeliveryLimit: a job whose process kept dying under it fails for good."""

from __future__ import annotations

import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings, keys
from conveyor.middleware import DeliveryLimit, default_middleware
from conveyor.testing import drain


class Empty(BaseModel):
    pass


ran: list[str] = []


def build(settings: Settings, *, with_limit: bool = True) -> Conveyor:
    defaults = [mw for mw in default_middleware() if with_limit or type(mw) is not DeliveryLimit]
    limited = settings.model_copy(update={"max_redeliveries": 2})
    app = Conveyor(limited, default_middleware=defaults, packs=[])

    @app.job("t.crashy", queue="processing")
    def crashy(ctx: JobContext, params: Empty) -> None:
        ran.append(ctx.job_id)

    return app


def test_a_job_over_the_delivery_limit_fails_unrun(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = build(settings)
    job = app.submit("t.crashy", {})
    # Three starts whose worker process died: the next start is the fourth.
    redis_client.hset(keys.job(job.id), "deliveries", 3)
    assert drain(app) == [job.id]
    state = job.state()
    assert state.status == "failed" and job.id not in ran
    assert state.error is not None and state.error.type == "DeliveryLimitExceeded"
    assert state.deliveries == 4 and state.attempt == 0


def test_without_the_middleware_the_job_runs_again(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = build(settings, with_limit=False)
    job = app.submit("t.crashy", {})
    redis_client.hset(keys.job(job.id), "deliveries", 3)
    drain(app)
    assert job.state().status == "succeeded" and job.id in ran
