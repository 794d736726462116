"""State changes are order-safe, land in the stream, and reach subscribers in order."""

from __future__ import annotations

import threading

import redis

from conveyor import Conveyor, keys
from conveyor.events import new_event
from conveyor.testing import wait_until


def job_status(client: redis.Redis, job_id: str) -> str:
    return (client.hget(keys.job(job_id), "status") or b"").decode()


def test_late_progress_never_reopens_a_succeeded_job(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    writer = app.event_writer()
    writer.emit(new_event("started", "j1", "diag.sleep", "processing"), mode="start")
    writer.emit(new_event("succeeded", "j1", "diag.sleep", "processing"))
    late = writer.emit(
        new_event("progress", "j1", "diag.sleep", "processing", progress=50.0),
        fields={"progress": 50.0},
    )
    assert not late.applied
    assert job_status(redis_client, "j1") == "succeeded"
    assert redis_client.hget(keys.job("j1"), "progress") is None


def test_an_older_attempt_cannot_overwrite_a_newer_one(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    writer = app.event_writer()
    writer.emit(new_event("started", "j2", "t", "q", attempt=1), mode="start")
    stale = writer.emit(new_event("retrying", "j2", "t", "q", attempt=0))
    assert not stale.applied
    assert job_status(redis_client, "j2") == "started"


def test_submitters_event_after_a_fast_worker_fills_in_without_regressing(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    writer = app.event_writer()
    writer.emit(new_event("started", "j3", "t", "q"), mode="start")
    writer.emit(new_event("succeeded", "j3", "t", "q"))
    writer.emit(new_event("queued", "j3", "t", "q"), fields={"payload": {"a": 1}}, mode="init")
    assert job_status(redis_client, "j3") == "succeeded"
    assert redis_client.hget(keys.job("j3"), "payload") == b'{"a":1}'
    types = [json_type(e) for _, e in redis_client.xrange(keys.EVENTS)]
    assert types == ["started", "succeeded", "queued"]


def json_type(entry: dict[bytes, bytes]) -> str:
    import json

    return str(json.loads(entry[b"e"])["type"])


def test_redelivery_counts_deliveries_not_attempts(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    writer = app.event_writer()
    first = writer.emit(new_event("started", "j4", "t", "q"), mode="start")
    second = writer.emit(new_event("started", "j4", "t", "q"), mode="start")
    assert (first.deliveries, second.deliveries) == (1, 2)
    assert redis_client.hget(keys.job("j4"), "attempt") == b"0"


def test_progress_events_reach_a_subscriber_in_order(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.job_channel("j5"))
    writer = app.event_writer()
    writer.emit(new_event("started", "j5", "t", "q"), mode="start")
    for pct in range(10, 101, 10):
        writer.emit(new_event("progress", "j5", "t", "q", progress=float(pct)))
    writer.emit(new_event("succeeded", "j5", "t", "q"))
    received: list[str] = []

    def collect() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message:
            event = __import__("json").loads(message["data"])
            received.append(f"{event['type']}:{event.get('progress', '')}")
        return len(received) == 12

    wait_until(collect, timeout=5, interval=0)
    assert received == ["started:"] + [f"progress:{float(p)}" for p in range(10, 101, 10)] + [
        "succeeded:"
    ]


def test_live_state_has_a_ttl(app: Conveyor, redis_client: redis.Redis) -> None:
    app.event_writer().emit(new_event("started", "j6", "t", "q"), mode="start")
    assert 0 < redis_client.ttl(keys.job("j6")) <= app.settings.result_expires_s


def test_concurrent_writers_are_atomic(app: Conveyor, redis_client: redis.Redis) -> None:
    writer = app.event_writer()
    writer.emit(new_event("started", "j7", "t", "q"), mode="start")

    def progress() -> None:
        for _ in range(50):
            writer.emit(new_event("progress", "j7", "t", "q", progress=1.0))

    threads = [threading.Thread(target=progress) for _ in range(4)]
    for t in threads:
        t.start()
    writer.emit(new_event("succeeded", "j7", "t", "q"))
    for t in threads:
        t.join()
    assert job_status(redis_client, "j7") == "succeeded"
