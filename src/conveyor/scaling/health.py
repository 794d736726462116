"""Worker health: heartbeat ages, the heartbeat file, and handing a dead worker's jobs back.

A worker is unhealthy when its heartbeat (``conveyor:workers``) is older than
``CONVEYOR_WORKER_STALE_S`` (three heartbeat intervals by default), when its
process is frozen (stopped), or when its memory is over
``CONVEYOR_WORKER_MEMORY_LIMIT_MB``.

When the local back end kills such a worker, the deliveries it held are still
in kombu's ``unacked`` hash (and the worker's held set) until live workers
rescue them, three heartbeats later. :func:`requeue_worker_jobs` hands them
back at once with the rescue's own atomic script (:mod:`conveyor.worker.rescue`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import redis

from conveyor import keys
from conveyor.settings import Settings
from conveyor.worker.heartbeats import MISSED_BEATS
from conveyor.worker.rescue import UNACKED, Rescuer

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.scaling")

#: How far ahead :func:`requeue_worker_jobs` sets the rescue's clock: past any lease.
_EVERY_LEASE_S = 10.0**9


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


def requeue_worker_jobs(app: Conveyor, worker: str) -> list[str]:
    """Hand the deliveries a dead ``worker`` held back to their queues at once; their job ids.

    Runs the worker rescue's own atomic script (:class:`~conveyor.worker.rescue.Rescuer`)
    for ``worker``'s held set only, with every lease treated as expired, instead
    of waiting for live workers to rescue it three heartbeats later.
    """
    client = app.redis
    tags = list(cast(set[bytes], client.smembers(keys.worker_held(worker))))
    if not tags:
        return []
    job_ids: dict[str, str] = {}
    for raw, value in zip(tags, cast(list[bytes | None], client.hmget(UNACKED, tags)), strict=True):
        with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
            job_ids[raw.decode()] = str(json.loads(value or b"")[0]["headers"]["id"])
    rescuer = Rescuer(client, worker, app.settings.heartbeat_s, app.topology.queue_names())
    # Rescue ``worker``'s own held set only (as after a failed beat, never other
    # workers'), with a clock far enough ahead that every lease has expired.
    rescuer.beat_failed()
    requeued = []
    for _, tag, _ in rescuer.rescue(now=time.time() + _EVERY_LEASE_S):
        job_id = job_ids.get(tag, tag)
        log.warning("job %s of dead worker %s handed back to its queue", job_id, worker)
        requeued.append(job_id)
    return requeued


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
