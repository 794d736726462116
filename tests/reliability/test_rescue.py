"""Leases and the orphan rescue (conveyor.worker.rescue) on a real broker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import redis

from conveyor import Conveyor, keys
from conveyor.testing import WorkerProcess, wait_until
from conveyor.worker.rescue import UNACKED, UNACKED_INDEX, Rescuer


def test_a_running_jobs_lease_is_renewed_so_the_visibility_sweep_never_takes_it(
    app: Conveyor, broker_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with WorkerProcess(
        broker_url,
        concurrency=1,
        queues=["processing"],
        env={"CONVEYOR_HEARTBEAT_S": "0.5"},
        log_path=tmp_path / "w.log",
    ) as worker:
        job = app.submit("diag.sleep", {"seconds": 4})
        wait_until(lambda: job.state().status == "started", timeout=30, what="the job to start")
        held = redis_client.smembers(keys.worker_held(worker.name))
        assert len(held) == 1  # type: ignore[arg-type]
        (tag,) = held  # type: ignore[misc]
        delivered = redis_client.zscore(UNACKED_INDEX, tag)
        assert delivered is not None
        oldest = 0.0
        while job.state().status == "started":
            score = redis_client.zscore(UNACKED_INDEX, tag)
            if score is not None:
                # What kombu's sweep would restore with a 2 s visibility timeout: nothing.
                oldest = max(oldest, time.time() - score)
                assert not redis_client.zrangebyscore(UNACKED_INDEX, "-inf", time.time() - 2)
            time.sleep(0.2)
        assert job.wait(timeout=10).status == "succeeded"
        assert oldest < 2.0
        assert (redis_client.zscore(UNACKED_INDEX, tag) or 0) == 0
        assert not redis_client.smembers(keys.worker_held(worker.name))
        assert job.state().deliveries == 1


def _message(job_id: str, tag: str, queue: str, priority: int) -> str:
    return json.dumps(
        {
            "body": "e30=",
            "headers": {"id": job_id, "task": "diag.noop", "timelimit": [None, None]},
            "properties": {
                "delivery_tag": tag,
                "priority": priority,
                "delivery_info": {"exchange": "", "routing_key": queue},
            },
        }
    )


def test_concurrent_rescuers_requeue_a_dead_workers_deliveries_exactly_once(
    redis_client: redis.Redis,
) -> None:
    dead = "ghost@host"
    old = time.time() - 60
    for i in range(20):
        tag = f"tag-{i}"
        raw = _message(f"job-{i}", tag, "processing", 7)
        redis_client.hset(UNACKED, tag, json.dumps([json.loads(raw), "", "processing"]))
        redis_client.zadd(UNACKED_INDEX, {tag: old})
        redis_client.sadd(keys.worker_held(dead), tag)
    redis_client.sadd(keys.HOLDERS, dead)
    redis_client.zadd(keys.WORKERS, {dead: old})
    rescuers = [Rescuer(redis_client, f"live-{i}@host", 1.0, ["processing"]) for i in range(4)]
    for rescuer in rescuers:
        redis_client.zadd(keys.WORKERS, {rescuer.name: time.time()})
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda r=r: results.append(len(r.rescue()))) for r in rescuers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 20
    restored = redis_client.lrange("processing:7", 0, -1)
    assert len(restored) == 20  # type: ignore[arg-type]
    first = json.loads(restored[0])  # type: ignore[index]
    assert first["properties"]["delivery_info"]["redelivered"] is True
    assert first["headers"]["redelivered"] is True
    assert first["headers"]["timelimit"] == [None, None]
    assert redis_client.hlen(UNACKED) == 0 and redis_client.zcard(UNACKED_INDEX) == 0
    assert not redis_client.exists(keys.worker_held(dead))
    assert not redis_client.sismember(keys.HOLDERS, dead)


def test_a_live_workers_deliveries_are_left_alone(redis_client: redis.Redis) -> None:
    live = "busy@host"
    raw = _message("job-x", "tag-x", "processing", 0)
    redis_client.hset(UNACKED, "tag-x", json.dumps([json.loads(raw), "", "processing"]))
    redis_client.zadd(UNACKED_INDEX, {"tag-x": time.time() - 60})  # lease long expired…
    redis_client.sadd(keys.worker_held(live), "tag-x")
    redis_client.sadd(keys.HOLDERS, live)
    redis_client.zadd(keys.WORKERS, {live: time.time()})  # …but its heartbeat is fresh
    assert Rescuer(redis_client, "other@host", 1.0, ["processing"]).rescue() == []
    assert redis_client.hexists(UNACKED, "tag-x")
    # Its own rescuer re-queues it: a delivery it no longer renews is an orphan.
    found = Rescuer(redis_client, live, 1.0, ["processing"]).rescue()
    assert found == [(live, "tag-x", "processing")]
    assert redis_client.llen("processing") == 1
