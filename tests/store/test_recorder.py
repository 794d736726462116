"""The recorder on the real session Valkey and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from tests.store.conftest import emit_jobs, wait_recorded

from conveyor import keys
from conveyor.events import EventWriter, new_event
from conveyor.store import JobStore
from conveyor.store.merge import sid_number
from conveyor.store.recorder import Recorder, ensure_group, recorder_lag
from conveyor.testing import wait_until


@contextmanager
def running(recorder: Recorder) -> Iterator[threading.Thread]:
    """``recorder.run()`` in a thread for the block; stopped and joined after."""
    thread = threading.Thread(target=recorder.run, name=recorder.consumer, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        recorder.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()


def assert_complete(store: JobStore, jobs: int, failed: int) -> None:
    """Every job is in the store exactly once with its final status, failures dead-lettered."""
    counts = store.count_by_status()
    assert counts == {"succeeded": jobs - failed, "failed": failed}
    assert len(store.list_dead_letters(limit=jobs + 1)) == failed
    sample = store.get_job("job-00001")
    assert sample is not None and sample.payload == {"n": "job-00001"}
    assert sample.deliveries == 1 and sample.started_at is not None


def ids(n: int, prefix: str = "job") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


def test_every_event_lands_and_lag_falls_to_zero(
    store: JobStore, writer: EventWriter, redis_client: redis.Redis
) -> None:
    assert recorder_lag(redis_client).group is False
    total = emit_jobs(writer, ids(200), steps=2, fail_every=4)
    lag = recorder_lag(redis_client)
    assert (lag.group, lag.unread) == (False, total)
    ensure_group(redis_client)
    lag = recorder_lag(redis_client)
    assert lag.group and lag.unread == total and lag.pending == 0
    assert lag.oldest_age_s is not None and lag.oldest_age_s >= 0
    stats = Recorder(store, redis_client, batch_size=128).drain()
    assert (stats.recorded, stats.malformed) == (total, 0)
    assert_complete(store, 200, failed=50)
    lag = recorder_lag(redis_client)
    assert (lag.pending, lag.unread, lag.oldest_age_s, int(lag)) == (0, 0, None, 0)
    assert redis_client.hget(keys.RECORDER_STATS, "recorded") == str(total).encode()


def test_malformed_events_are_logged_acknowledged_and_counted(
    store: JobStore,
    writer: EventWriter,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = emit_jobs(writer, ids(3))
    bad_entries = [
        {"e": b"{not json"},
        {"e": json.dumps({"v": 1, "type": "exploded", "job_id": "x", "ts": 1.0})},
        {"e": json.dumps({"v": 1, "type": "started", "job_type": "t", "queue": "q", "ts": 1.0})},
        {"e": json.dumps([1, 2, 3])},
        {"other": b"field"},
        {
            "e": json.dumps(
                {
                    "v": 1,
                    "type": "progress",
                    "job_id": "y",
                    "job_type": "t",
                    "queue": "q",
                    "ts": 1.0,
                    "attempt": "many",
                }
            )
        },
    ]
    bad_ids = [redis_client.xadd(keys.EVENTS, fields).decode() for fields in bad_entries]
    good += emit_jobs(writer, ids(2, prefix="late"))
    with caplog.at_level(logging.WARNING, logger="conveyor.recorder"):
        stats = Recorder(store, redis_client).drain()
    assert (stats.recorded, stats.malformed) == (good, len(bad_entries))
    assert sorted(stats.malformed_ids, key=sid_number) == bad_ids
    for stream_id, reason in zip(
        bad_ids,
        [
            "not JSON",
            "unknown type",
            "missing job_id",
            "not a JSON object",
            "no field 'e'",
            "attempt is not a number",
        ],
        strict=True,
    ):
        assert any(stream_id in r.message and reason in r.message for r in caplog.records), reason
    assert redis_client.hget(keys.RECORDER_STATS, "malformed") == str(len(bad_entries)).encode()
    assert recorder_lag(redis_client).pending == 0
    assert store.count_by_status() == {"succeeded": 5}


def test_two_recorders_at_once_count_nothing_twice(
    store: JobStore, writer: EventWriter, redis_client: redis.Redis
) -> None:
    ensure_group(redis_client)
    first = Recorder(store, redis_client, consumer="one", batch_size=50, claim_idle_s=60)
    second = Recorder(store, redis_client, consumer="two", batch_size=50, claim_idle_s=60)
    total = 0
    with running(first), running(second):
        for chunk in range(6):
            total += emit_jobs(writer, ids(50, prefix=f"job-{chunk}"), steps=1, fail_every=10)
        wait_recorded(redis_client)
    assert first.stats.recorded > 0 and second.stats.recorded > 0
    assert first.stats.recorded + second.stats.recorded == total
    assert store.count_by_status() == {"succeeded": 270, "failed": 30}
    assert len(store.list_dead_letters(limit=1000)) == 30


def test_a_value_the_database_refuses_is_set_aside_not_blocking(
    store: JobStore, writer: EventWriter, redis_client: redis.Redis
) -> None:
    emit_jobs(writer, ids(3))
    poisoned = new_event("progress", "job-00001", "diag.sleep", "processing", stage="a\x00b")
    stream_id = redis_client.xadd(keys.EVENTS, {"e": json.dumps(poisoned)}).decode()
    emit_jobs(writer, ids(2, prefix="after"))
    stats = Recorder(store, redis_client).drain()
    assert store.count_by_status() == {"succeeded": 5}
    if store.dialect == "postgresql":  # text cannot hold NUL there; SQLite stores it
        assert stats.malformed_ids == [stream_id]
    else:
        assert stats.malformed == 0
    assert recorder_lag(redis_client).pending == 0


def test_a_lost_stream_and_group_are_recreated(
    store: JobStore, writer: EventWriter, redis_client: redis.Redis
) -> None:
    recorder = Recorder(store, redis_client, block_s=0.1)
    with running(recorder):
        emit_jobs(writer, ids(5))
        wait_recorded(redis_client)
        redis_client.delete(keys.EVENTS)  # as after a broker restart without persistence
        emit_jobs(writer, ids(5, prefix="after"))
        wait_until(lambda: store.count_by_status().get("succeeded") == 10, timeout=30)


def test_recorders_gone_for_good_are_forgotten(
    store: JobStore, writer: EventWriter, redis_client: redis.Redis
) -> None:
    emit_jobs(writer, ids(2))
    Recorder(store, redis_client, consumer="old").drain()
    recorder = Recorder(store, redis_client, consumer="new", claim_idle_s=0.001)

    def names() -> set[str]:
        consumers = redis_client.xinfo_consumers(keys.EVENTS, keys.RECORDER_GROUP)
        return {_name(c) for c in consumers}

    recorder._forget_idle_consumers(idle_s=60)
    assert "old" in names()  # idle for less than a minute: kept

    def forgotten() -> bool:
        recorder._forget_idle_consumers(idle_s=0.05)
        return "old" not in names()

    wait_until(forgotten, timeout=10, what="the idle consumer to be removed")


def _name(consumer: dict[str, object]) -> str:
    name = consumer["name"]
    return name.decode() if isinstance(name, bytes) else str(name)
