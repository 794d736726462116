"""Submitting: validation before anything is enqueued, delays on the broker, fail-fast errors."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings, keys
from conveyor.broker.inspect import delayed_count, queue_depths
from conveyor.enqueue import mover
from conveyor.errors import BrokerError, InvalidSubmission, PayloadInvalid, UnknownJobType


def nothing_enqueued(app: Conveyor, client: redis.Redis) -> bool:
    waiting = sum(d.total for d in queue_depths(client, app.topology))
    return waiting == 0 and delayed_count(client) == 0 and client.xlen(keys.EVENTS) == 0


def test_submit_enqueues_on_the_type_queue_with_its_priority(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {})
    state = job.state()
    assert (state.status, state.queue, state.priority, state.type) == (
        "queued",
        "processing",
        3,
        "diag.noop",
    )
    assert redis_client.llen(keys.queue_list("processing", 3)) == 1


def test_submit_may_override_queue_and_priority(app: Conveyor, redis_client: redis.Redis) -> None:
    app.submit("diag.noop", {}, queue="critical", priority=9)
    assert redis_client.llen(keys.queue_list("critical", 9)) == 1


def test_unknown_type_enqueues_nothing(app: Conveyor, redis_client: redis.Redis) -> None:
    with pytest.raises(UnknownJobType, match=r"known types: diag.flaky, diag.noop, diag.sleep"):
        app.submit("diag.nope", {})
    assert nothing_enqueued(app, redis_client)


def test_invalid_payload_enqueues_nothing(app: Conveyor, redis_client: redis.Redis) -> None:
    with pytest.raises(PayloadInvalid) as caught:
        app.submit("diag.sleep", {"seconds": -1})
    assert caught.value.errors[0]["field"] == "seconds"
    assert nothing_enqueued(app, redis_client)


@pytest.mark.parametrize("priority", [-1, 11, 3.5, True])
def test_bad_priority_enqueues_nothing(
    app: Conveyor, redis_client: redis.Redis, priority: object
) -> None:
    with pytest.raises(InvalidSubmission, match="priority"):
        app.submit("diag.noop", {}, priority=priority)  # type: ignore[arg-type]
    assert nothing_enqueued(app, redis_client)


def test_unknown_queue_enqueues_nothing(app: Conveyor, redis_client: redis.Redis) -> None:
    with pytest.raises(InvalidSubmission, match="unknown queue 'nope'; known queues: critical"):
        app.submit("diag.noop", {}, queue="nope")
    assert nothing_enqueued(app, redis_client)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broker_down_fails_fast_naming_the_url_without_its_password(tmp_path: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    app = Conveyor(Settings(redis_url=url, home=tmp_path, broker_connect_timeout_s=1))
    started = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        app.submit("diag.noop", {})
    assert time.monotonic() - started < 15
    assert "127.0.0.1" in str(caught.value) and "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


def test_no_broker_at_all_says_how_to_start_one(tmp_path: Path) -> None:
    app = Conveyor(Settings(home=tmp_path))
    with pytest.raises(BrokerError, match="conveyor up"):
        app.submit("diag.noop", {})


def test_delayed_job_waits_on_the_broker_not_in_a_queue(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {}, delay=7200)
    state = job.state()
    assert state.status == "scheduled" and state.due_at is not None
    assert delayed_count(redis_client) == 1
    assert sum(d.total for d in queue_depths(redis_client, app.topology)) == 0
    delayed_mover = mover(app)
    assert delayed_mover.move_due() == 0
    assert delayed_mover.move_due(now=time.time() + 7201) == 1
    assert job.state().status == "queued"
    assert redis_client.llen(keys.queue_list("processing", 3)) == 1
    assert delayed_count(redis_client) == 0


def test_two_movers_never_move_the_same_job_twice(app: Conveyor, redis_client: redis.Redis) -> None:
    for _ in range(50):
        app.submit("diag.noop", {}, delay=3600)
    later = time.time() + 3601
    movers = [mover(app, batch=7) for _ in range(2)]
    moved = [0, 0]
    import threading

    def run(i: int) -> None:
        moved[i] = movers[i].move_due(now=later)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(moved) == 50
    assert redis_client.llen(keys.queue_list("processing", 3)) == 50


def test_cancelled_scheduled_job_is_never_moved(app: Conveyor, redis_client: redis.Redis) -> None:
    job = app.submit("diag.noop", {}, delay=60)
    assert job.cancel()
    assert job.state().status == "cancelled"
    assert mover(app).move_due(now=time.time() + 61) == 0


def test_idempotency_key_returns_the_existing_job(app: Conveyor, redis_client: redis.Redis) -> None:
    first = app.submit("diag.noop", {}, idempotency_key="report-42")
    second = app.submit("diag.noop", {}, idempotency_key="report-42")
    assert second.id == first.id and second.deduplicated
    assert redis_client.llen(keys.queue_list("processing", 3)) == 1
