"""``app.submit_many``: many jobs of one type, validated first, enqueued pipelined."""

from __future__ import annotations

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, keys
from conveyor.errors import InvalidSubmission, PayloadInvalid
from tests.integration.test_submit import nothing_enqueued


class Order(BaseModel):
    user: str


def test_every_payload_becomes_a_queued_job_in_order(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    jobs = app.submit_many("diag.sleep", ({"seconds": i / 100} for i in range(250)), chunk=100)
    assert len(jobs) == len({job.id for job in jobs}) == 250
    assert redis_client.llen(keys.queue_list("processing", 3)) == 250
    assert redis_client.xlen(keys.EVENTS) == 250
    states = [job.state() for job in (jobs[0], jobs[-1])]
    assert [(s.status, s.payload) for s in states] == [
        ("queued", {"seconds": 0.0, "steps": 1}),
        ("queued", {"seconds": 2.49, "steps": 1}),
    ]


def test_one_bad_payload_enqueues_nothing(app: Conveyor, redis_client: redis.Redis) -> None:
    payloads = [{"seconds": 1}, {"seconds": "soon"}, {"seconds": 2}]
    with pytest.raises(PayloadInvalid, match="seconds"):
        app.submit_many("diag.sleep", payloads)
    assert nothing_enqueued(app, redis_client)


def test_a_unique_type_claims_each_key(app: Conveyor, redis_client: redis.Redis) -> None:
    @app.job("shop.order", unique=True)
    def order(ctx: JobContext, params: Order) -> None: ...

    jobs = app.submit_many("shop.order", [{"user": "a"}, {"user": "b"}, {"user": "a"}])
    assert [job.deduplicated for job in jobs] == [False, False, True]
    assert jobs[2].id == jobs[0].id


def test_a_chunk_below_one_is_refused(app: Conveyor) -> None:
    with pytest.raises(InvalidSubmission, match="chunk"):
        app.submit_many("diag.noop", [{}], chunk=0)
