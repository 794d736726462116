"""The delayed-job mover publishes each due attempt exactly once, whatever crashes."""

from __future__ import annotations

import json
import time

import pytest
import redis

from conveyor import Conveyor, keys
from conveyor.delayed import CLAIM_LEASE_S, Mover
from conveyor.enqueue import move, mover
from conveyor.submission import Submission

QUEUE = keys.queue_list("processing", 3)


class Crash(Exception):
    """The mover's process dies after claiming."""


def test_an_entry_claimed_is_published_exactly_once(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {}, delay=60)
    later = time.time() + 61
    assert mover(app).move_due(now=later) == 1
    assert mover(app).move_due(now=later) == 0
    assert mover(app).move_due(now=later + CLAIM_LEASE_S + 1) == 0
    assert redis_client.llen(QUEUE) == 1
    assert redis_client.zcard(keys.DELAYED) == 0 and redis_client.hlen(keys.DELAYED_JOBS) == 0
    assert job.state().status == "queued"


def test_a_crash_after_claim_still_publishes_once_after_the_lease(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {}, delay=60)
    later = time.time() + 61

    def crash(submission: Submission, claim: float) -> bool:
        raise Crash

    with pytest.raises(Crash):
        Mover(redis_client, crash).move_due(now=later)
    assert redis_client.llen(QUEUE) == 0, "claimed, not published"
    assert mover(app).move_due(now=later) == 0, "the claim holds until its lease ends"
    assert mover(app).move_due(now=later + CLAIM_LEASE_S + 1) == 1
    assert mover(app).move_due(now=later + 2 * CLAIM_LEASE_S + 2) == 0
    assert redis_client.llen(QUEUE) == 1
    assert job.state().status == "queued"


def test_a_mover_whose_claim_was_taken_over_publishes_nothing(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    app.submit("diag.noop", {}, delay=60)
    later = time.time() + 61
    stalled: list[tuple[Submission, float]] = []

    def stall(submission: Submission, claim: float) -> bool:
        stalled.append((submission, claim))  # a mover that stops here past its lease
        return False

    Mover(redis_client, stall).move_due(now=later)
    assert mover(app).move_due(now=later + CLAIM_LEASE_S + 1) == 1
    ((submission, claim),) = stalled
    assert move(app, submission, claim) is False, "its claim was taken over: nothing published"
    assert redis_client.llen(QUEUE) == 1


def test_an_entry_written_by_an_earlier_version_is_moved(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job_id = "0b1e7c3e-0000-4000-8000-000000000001"
    due = time.time() - 1
    entry = {
        "id": job_id,
        "type": "diag.noop",
        "payload": {},
        "queue": "processing",
        "priority": 3,
        "attempt": 1,
        "created_at": due - 10,
        "due_at": due,
        "time_limit": 30.0,
    }
    redis_client.hset(keys.DELAYED_JOBS, job_id, json.dumps(entry, separators=(",", ":")))
    redis_client.zadd(keys.DELAYED, {job_id: due})
    assert mover(app).move_due() == 1
    message = json.loads(redis_client.rpop(QUEUE) or b"{}")
    assert message["headers"]["id"] == job_id and message["headers"]["timelimit"][0] == 30.0
    state = app.get_job(job_id).state()
    assert state.status == "queued" and state.attempt == 1


def test_an_entry_that_is_not_a_submission_is_left_in_place(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    redis_client.hset(keys.DELAYED_JOBS, "odd", '{"id":"odd","n":1}')
    redis_client.zadd(keys.DELAYED, {"odd": time.time() - 1})
    assert mover(app).move_due() == 0
    assert redis_client.hget(keys.DELAYED_JOBS, "odd") == b'{"id":"odd","n":1}'
    assert redis_client.zscore(keys.DELAYED, "odd") is not None
