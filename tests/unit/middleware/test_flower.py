"""FlowerEvents: a job's state changes carry Celery task events only while it is installed."""

from __future__ import annotations

import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings
from conveyor.middleware import FlowerEvents, default_middleware
from conveyor.testing import drain, wait_until

SENTINEL = "/0.celeryev/test.sentinel"


class Empty(BaseModel):
    pass


def task_events(settings: Settings, client: redis.Redis, *, flower: bool) -> list[str]:
    """The Celery event channels one job's submit and run published to, in order."""
    defaults = [mw for mw in default_middleware() if flower or not isinstance(mw, FlowerEvents)]
    app = Conveyor(settings, default_middleware=defaults, packs=[])

    @app.job("t.noop", queue="processing")
    def noop(ctx: JobContext, params: Empty) -> None:
        return None

    pubsub = client.pubsub()
    pubsub.psubscribe("*celeryev*")
    wait_until(lambda: pubsub.get_message(timeout=0.1), what="the subscription")
    job = app.submit("t.noop", {})
    drain(app)
    assert job.state().status == "succeeded"
    # Published after the job's events, so it arrives after them: nothing is missed.
    client.publish(SENTINEL, "end")
    seen: list[str] = []

    def sentinel_seen() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "pmessage":
            seen.append(message["channel"].decode())
        return bool(seen) and seen[-1] == SENTINEL

    wait_until(sentinel_seen, what="the sentinel message")
    pubsub.close()
    return [channel.rsplit("/", 1)[-1] for channel in seen[:-1]]


def test_with_flower_events_each_state_change_is_reported(
    settings: Settings, redis_client: redis.Redis
) -> None:
    assert task_events(settings, redis_client, flower=True) == [
        "task.sent",
        "task.received",
        "task.started",
        "task.succeeded",
    ]


def test_without_it_no_task_event_is_written(settings: Settings, redis_client: redis.Redis) -> None:
    assert task_events(settings, redis_client, flower=False) == []
