"""Chaos 1: workers killed with SIGKILL mid-run lose no job, and a dead worker's jobs come
back within seconds (its missing heartbeat), not after the broker's visibility timeout."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import redis

from conveyor import Conveyor, keys
from conveyor.testing import WorkerProcess, wait_until
from conveyor.worker.rescue import UNACKED
from tests.chaos.conftest import HEARTBEAT_S, kill_group, pool_children

JOBS = 240
WORKERS = 2
CONCURRENCY = 2


def _statuses(client: redis.Redis, ids: list[str]) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "status")
    return [(s or b"").decode() for s in pipe.execute()]


def _succeeded(client: redis.Redis, ids: list[str]) -> int:
    return sum(s == "succeeded" for s in _statuses(client, ids))


def _held_jobs(client: redis.Redis, worker: str) -> dict[str, str]:
    """Delivery tag -> job id of what ``worker`` holds unacknowledged."""
    tags = [t.decode() for t in client.smembers(keys.worker_held(worker))]  # type: ignore[union-attr]
    held = {}
    for tag in tags:
        raw = client.hget(UNACKED, tag)
        if raw:
            held[tag] = json.loads(raw)[0]["headers"]["id"]
    return held


def test_sigkilled_workers_lose_nothing_and_dead_workers_jobs_come_back_fast(
    app: Conveyor,
    redis_client: redis.Redis,
    broker_url: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {"CONVEYOR_HEARTBEAT_S": HEARTBEAT_S}

    def start(index: int) -> WorkerProcess:
        worker = WorkerProcess(
            broker_url,
            profile="processing",
            concurrency=CONCURRENCY,
            queues=["processing"],
            env=env,
            log_path=tmp_path / f"worker-{index}.log",
        )
        workers.append(worker)
        return worker.start()

    first, second = (start(i) for i in range(WORKERS))
    rng = random.Random(4)
    ids = [
        app.submit("diag.sleep", {"seconds": round(rng.uniform(0.05, 0.35), 3)}).id
        for _ in range(JOBS)
    ]
    began = time.monotonic()

    def reach(done: int) -> None:
        wait_until(
            lambda: _succeeded(redis_client, ids) >= done,
            timeout=120,
            interval=0.2,
            what=f"{done} jobs succeeded",
        )

    # 1. A pool child of each worker, SIGKILLed mid-job (Celery re-queues its job at once).
    reach(JOBS // 10)
    os.kill(pool_children(first)[0].pid, signal.SIGKILL)
    reach(JOBS // 4)
    os.kill(pool_children(second)[0].pid, signal.SIGKILL)

    # 2. The first worker's main process, SIGKILLed: its pool children are orphaned and
    #    the deliveries it held stay in kombu's unacked hash until someone rescues them.
    reach(JOBS // 2)
    held = wait_until(
        lambda: _held_jobs(redis_client, first.name), timeout=10, what="a held delivery"
    )
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    first.process.wait(timeout=10)  # type: ignore[union-attr]
    replacement = start(WORKERS)  # what a supervisor does

    wait_until(
        lambda: not redis_client.exists(keys.worker_held(first.name)),
        timeout=60,
        interval=0.1,
        what="the dead worker's deliveries to be rescued",
    )
    rescue_s = time.monotonic() - killed_at
    kill_group(first)  # the orphaned pool children

    reach(JOBS)
    total_s = time.monotonic() - began
    statuses = _statuses(redis_client, ids)
    assert statuses.count("succeeded") == JOBS, {s: statuses.count(s) for s in set(statuses)}

    pipe = redis_client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "deliveries")
    deliveries = [int(d or 0) for d in pipe.execute()]
    twice = sum(d > 1 for d in deliveries)
    rescued_jobs = set(held.values())
    print(
        f"\nchaos/worker-kill: {JOBS} jobs over {WORKERS} workers x {CONCURRENCY} in "
        f"{total_s:.1f}s; 2 pool children and 1 main process SIGKILLed; "
        f"the dead worker's {len(rescued_jobs)} held deliveries re-queued {rescue_s:.1f}s "
        f"after the kill (heartbeat {HEARTBEAT_S}s); {twice} job(s) delivered twice, "
        f"max deliveries {max(deliveries)}"
    )
    # Every job ran at least once and none was lost; redeliveries are bounded by the kills.
    assert min(deliveries) >= 1
    assert rescue_s < 60
    assert twice <= 2 * CONCURRENCY + len(rescued_jobs) + 2
    # Nothing is left unacknowledged or held once every job is done.
    wait_until(lambda: redis_client.hlen(UNACKED) == 0, timeout=10, what="unacked to drain")
    assert "rescue: " in replacement.log() + second.log()
