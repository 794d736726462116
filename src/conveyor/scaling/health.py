"""Worker health: heartbeat ages, the heartbeat file, and handing a dead worker's jobs back.

A worker is unhealthy when its heartbeat (``conveyor:workers``) is older than
``CONVEYOR_WORKER_STALE_S`` (three heartbeat intervals by default), when its
process is frozen (stopped), or when its memory is over
``CONVEYOR_WORKER_MEMORY_LIMIT_MB``.

When the local back end kills such a worker, the jobs it had started are still
in kombu's ``unacked`` hash and would come back only after the visibility
timeout (an hour by default). :func:`requeue_worker_jobs` hands them back at
once: it finds the deliveries whose job was started by that worker (the job's
live state names its worker) and restores them with kombu's own
``restore_by_tag`` (atomic: removed from ``unacked`` and pushed to the head of
their priority list in one transaction).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis

from conveyor import keys
from conveyor.scaling.backlog import RUNNING, UNACKED
from conveyor.settings import Settings
from conveyor.worker.registry import MISSED_BEATS

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.scaling")


def stale_after_s(settings: Settings) -> float:
    """Seconds without a heartbeat after which a worker is unhealthy."""
    return settings.worker_stale_s or settings.heartbeat_s * MISSED_BEATS


def heartbeat_ages(client: redis.Redis, now: float | None = None) -> dict[str, float]:
    """Worker name → seconds since its last heartbeat, for every registered worker."""
    now = time.time() if now is None else now
    entries = cast(list[tuple[bytes, float]], client.zrange(keys.WORKERS, 0, -1, withscores=True))
    return {name.decode(): now - score for name, score in entries}


def forget_worker(client: redis.Redis, name: str) -> None:
    """Remove a dead worker's registration."""
    pipe = client.pipeline(transaction=False)
    pipe.zrem(keys.WORKERS, name)
    pipe.delete(keys.worker(name))
    pipe.execute()


def worker_deliveries(client: redis.Redis, worker: str) -> list[tuple[str, str]]:
    """(delivery tag, job id) of each unacknowledged delivery whose job ``worker`` started."""
    found: list[tuple[str, str]] = []
    for tag, value in client.hscan_iter(UNACKED):
        try:
            message, _exchange, _routing_key = json.loads(value)
            found.append((tag.decode(), str(message["headers"]["id"])))
        except (ValueError, KeyError, TypeError):
            continue
    if not found:
        return []
    pipe = client.pipeline(transaction=False)
    for _, job_id in found:
        pipe.hmget(keys.job(job_id), "status", "worker")
    mine = []
    for (tag, job_id), (status, owner) in zip(found, pipe.execute(), strict=True):
        running = status is not None and status.decode() in RUNNING
        if running and owner is not None and owner.decode() == worker:
            mine.append((tag, job_id))
    return mine


def requeue_worker_jobs(app: Conveyor, worker: str) -> list[str]:
    """Hand the jobs a dead ``worker`` had started back to their queues; their ids."""
    deliveries = worker_deliveries(app.redis, worker)
    if not deliveries:
        return []
    with app.celery.connection_for_write() as conn:
        channel: Any = conn.default_channel
        for tag, job_id in deliveries:
            # kombu's own restore: removes the tag from unacked and pushes the
            # message to the head of its priority list, in one transaction.
            channel.qos.restore_by_tag(tag, leftmost=False)
            log.warning("job %s of dead worker %s handed back to its queue", job_id, worker)
    return [job_id for _, job_id in deliveries]


def heartbeat_file_for(settings: Settings, worker: str) -> Path:
    """The file a worker touches on every heartbeat (``CONVEYOR_HEARTBEAT_FILE`` or per name)."""
    if settings.heartbeat_file is not None:
        return settings.heartbeat_file
    return settings.home_dir / "heartbeats" / f"{worker}.beat"


def probe(path: Path, max_age_s: float, now: float | None = None) -> tuple[bool, str]:
    """Whether the heartbeat file at ``path`` is younger than ``max_age_s``, and a message."""
    now = time.time() if now is None else now
    try:
        age = now - os.stat(path).st_mtime
    except FileNotFoundError:
        return False, f"no heartbeat file at {path} (has the worker started?)"
    if age > max_age_s:
        return False, f"heartbeat file {path} is {age:.1f}s old (limit {max_age_s:g}s)"
    return True, f"heartbeat {age:.1f}s ago"
