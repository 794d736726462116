"""What a worker does with a job whose type it does not declare, decided in-process."""

from __future__ import annotations

import json
from typing import Any

import redis

from conveyor import Conveyor, Settings, keys
from conveyor.worker.heartbeats import Heartbeat
from conveyor.worker.unknown import HOPS_FIELD, Delivery, UnknownTypes, pause_s


def delivery(job_id: str = "11111111-2222-3333-4444-555555555555") -> Delivery:
    meta: dict[str, Any] = {"attempt": 0, "queue": "generation", "priority": 5}
    return Delivery(job_id, "audio.transcribe", {"url": "u"}, meta, "generation", 5)


def serve(client: redis.Redis, name: str, types: list[str]) -> Heartbeat:
    beat = Heartbeat(client, name, "generation", ["generation"], 1, 5.0, types=types)
    beat.beat()
    return beat


def test_a_job_goes_back_while_a_live_worker_serves_it_then_fails_past_the_hop_limit(
    broker_url: str, redis_client: redis.Redis
) -> None:
    app = Conveyor(Settings(redis_url=broker_url, unknown_type_max_hops=2))
    serve(redis_client, "own-1@h", ["audio.transcribe"])
    handler = UnknownTypes(app, "builtin-1@h")
    job = delivery()
    assert handler.handle(job) == "handed back"
    spec = json.loads(redis_client.hget(keys.DELAYED_JOBS, job.job_id) or b"{}")
    assert spec["type"] == "audio.transcribe" and spec["handed_back"] is True
    assert spec["payload"] == {"url": "u"} and spec["queue"] == "generation"
    assert handler.handle(job) == "handed back"
    assert handler.handle(job) == "failed"
    state = app.get_job(job.job_id).state()
    assert state.status == "failed" and state.error is not None
    assert state.error.type == "UnknownJobType"
    assert "handed back 2 times" in state.error.message
    assert redis_client.hget(keys.job(job.job_id), HOPS_FIELD) == b"3"


def test_a_job_no_live_worker_serves_fails_at_once_and_a_finished_one_is_left_alone(
    broker_url: str, redis_client: redis.Redis
) -> None:
    app = Conveyor(Settings(redis_url=broker_url))
    # A worker that declares the type, but on another queue, does not count.
    beat = Heartbeat(
        redis_client, "own-1@h", "batch", ["batch"], 1, 5.0, types=["audio.transcribe"]
    )
    beat.beat()
    handler = UnknownTypes(app, "builtin-1@h")
    assert handler.handle(delivery()) == "failed"
    error = app.get_job(delivery().job_id).state().error
    assert error is not None
    assert "no live worker serves audio.transcribe on queue generation" in error.message
    assert handler.handle(delivery()) == "done"  # already failed: nothing more to do


def test_pauses_grow_to_a_cap() -> None:
    assert pause_s(1) == 0.05 and pause_s(2) == 0.1
    assert pause_s(50) == 5.0
