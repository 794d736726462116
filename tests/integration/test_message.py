"""The message a submit pushes directly is the one Celery's ``send_task`` would have sent."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from conveyor import Conveyor, keys
from conveyor.enqueue import send_through_celery
from conveyor.submission import Submission


def _comparable(raw: bytes) -> dict[str, Any]:
    message = json.loads(raw)
    props = message["properties"]
    del props["delivery_tag"]  # unique per message
    # kombu copies send_task's display options into the properties; nothing reads them.
    props.pop("argsrepr", None)
    props.pop("kwargsrepr", None)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    message["headers"].pop("origin")
    return message


def test_direct_message_matches_send_task(app: Conveyor, redis_client: redis.Redis) -> None:
    job = app.submit("diag.noop", {}, priority=4, time_limit=30, soft_time_limit=20)
    direct = redis_client.rpop(keys.queue_list("processing", 4))
    assert direct is not None
    state = job.state()
    spec = Submission(
        id=job.id,
        type="diag.noop",
        payload={},
        queue="processing",
        priority=4,
        attempt=0,
        created_at=state.created_at,
        time_limit=30,
        soft_time_limit=20,
    )
    send_through_celery(app, spec)
    through_celery = redis_client.rpop(keys.queue_list("processing", 4))
    assert through_celery is not None
    assert _comparable(direct) == _comparable(through_celery)
    assert json.loads(direct)["headers"]["timelimit"] == [30, 20]


def test_message_and_queued_event_are_one_step(app: Conveyor, redis_client: redis.Redis) -> None:
    job = app.submit("diag.noop", {})
    assert redis_client.llen(keys.queue_list("processing", 3)) == 1
    assert job.state().status == "queued"
