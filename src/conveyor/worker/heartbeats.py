"""Live workers: each registers itself and renews a heartbeat while it runs.

``conveyor:workers`` is a sorted set of worker names scored by their last
heartbeat; ``conveyor:worker:{name}`` describes one worker and expires when its
heartbeats stop. A worker is live while its heartbeat is younger than three
heartbeat intervals.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from redis.typing import EncodableT, FieldT

from conveyor import keys
from conveyor.private import private_dir
from conveyor.ticker import Ticker

log = logging.getLogger("conveyor.worker")

#: A worker whose heartbeat is older than this many intervals is taken for dead.
MISSED_BEATS = 3


@dataclass
class WorkerInfo:
    """One live worker as it described itself."""

    name: str
    profile: str
    queues: list[str]
    concurrency: int
    pid: int
    host: str
    started_at: float
    last_heartbeat: float
    #: Jobs running now, jobs taken since start, memory of the process tree, GPU(s).
    active: int = 0
    processed: int = 0
    rss_bytes: int = 0
    gpu: str = ""
    #: The pool size and where it came from, e.g. ``2-4 autoscale (conveyor.toml)``.
    pool_size: str = ""
    #: The job types the worker's application declares (what it can run).
    types: list[str] = field(default_factory=list)


class Heartbeat:
    """Registers a worker, renews its heartbeat in a thread, and removes it on stop."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        profile: str,
        queues: list[str],
        concurrency: int,
        interval_s: float,
        *,
        on_beat: Callable[[Any], None] | None = None,
        after_beat: Callable[[], Any] | None = None,
        on_failure: Callable[[], None] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
        beat_file: Path | None = None,
        types: Sequence[str] = (),
    ) -> None:
        self.client = client
        #: Fields that change (active jobs, processed count, RSS), read at each beat.
        self.status = status
        #: A file touched at each beat that reached the broker (for liveness probes).
        self.beat_file = beat_file
        #: Adds commands to the heartbeat's pipeline (the lease renewal).
        self.on_beat = on_beat
        #: Runs after each heartbeat that reached the broker (the orphan rescue).
        self.after_beat = after_beat
        #: Runs after each heartbeat that did not.
        self.on_failure = on_failure
        self.name = name
        self.interval_s = interval_s
        self.description: dict[FieldT, EncodableT] = {
            "name": name,
            "profile": profile,
            "queues": ",".join(queues),
            "concurrency": concurrency,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.time(),
            "types": ",".join(sorted(types)),
        }
        self._ticker = Ticker("conveyor-heartbeat", interval_s, self._tick)

    def beat(self) -> None:
        """Write the description and renew the heartbeat (one round trip)."""
        ttl = max(1, int(self.interval_s * MISSED_BEATS) + 1)
        pipe = self.client.pipeline(transaction=False)
        mapping = dict(self.description)
        if self.status is not None:
            mapping.update(self.status())
        pipe.hset(keys.worker(self.name), mapping=mapping)
        pipe.expire(keys.worker(self.name), ttl)
        pipe.zadd(keys.WORKERS, {self.name: time.time()})
        if self.on_beat is not None:
            self.on_beat(pipe)
        pipe.execute()
        if self.beat_file is not None:
            touch(self.beat_file)

    def _tick(self) -> None:
        try:
            self.beat()
            if self.after_beat is not None:
                self.after_beat()
        except redis.RedisError as exc:
            log.warning("heartbeat of %s failed: %s", self.name, exc)
            if self.on_failure is not None:
                self.on_failure()
        except Exception:  # a bug in a hook must not stop the heartbeat
            log.exception("heartbeat of %s: hook failed", self.name)

    def start(self) -> None:
        """Register now and keep the heartbeat going in a daemon thread."""
        self.beat()
        self._ticker.start()

    def stop(self) -> None:
        """Stop beating and unregister."""
        self._ticker.stop()
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(keys.WORKERS, self.name)
            pipe.delete(keys.worker(self.name))
            pipe.execute()
        except redis.RedisError:
            pass


def live_workers(client: redis.Redis, interval_s: float) -> list[WorkerInfo]:
    """Workers whose heartbeat is recent, oldest first."""
    cutoff = time.time() - interval_s * MISSED_BEATS
    entries = cast(
        list[tuple[bytes, float]],
        client.zrangebyscore(keys.WORKERS, cutoff, "+inf", withscores=True),
    )
    if not entries:
        return []
    pipe = client.pipeline(transaction=False)
    for name, _ in entries:
        pipe.hgetall(keys.worker(name.decode()))
    found = []
    for (name, beat), raw in zip(entries, pipe.execute(), strict=True):
        if not raw:
            continue
        data = {k.decode(): v.decode() for k, v in raw.items()}
        found.append(
            WorkerInfo(
                name=name.decode(),
                profile=data.get("profile", "?"),
                queues=[q for q in data.get("queues", "").split(",") if q],
                concurrency=int(data.get("concurrency", 0)),
                pid=int(data.get("pid", 0)),
                host=data.get("host", "?"),
                started_at=float(data.get("started_at", 0)),
                last_heartbeat=float(beat),
                active=int(data.get("active", 0)),
                processed=int(data.get("processed", 0)),
                rss_bytes=int(data.get("rss_bytes", 0)),
                gpu=data.get("gpu", ""),
                pool_size=data.get("pool_size", ""),
                types=[t for t in data.get("types", "").split(",") if t],
            )
        )
    return found


def serving_workers(
    client: redis.Redis, interval_s: float, job_type: str, queue: str | None = None
) -> list[str]:
    """Names of the live workers that serve ``job_type`` (on ``queue``, when given)."""
    return [
        w.name
        for w in live_workers(client, interval_s)
        if job_type in w.types and (queue is None or queue in w.queues)
    ]


def unserved(client: redis.Redis, interval_s: float, job_type: str, queue: str) -> str | None:
    """Why a job of ``job_type`` on ``queue`` will not run now, or None when a worker serves it."""
    workers = live_workers(client, interval_s)
    on_queue = [w for w in workers if queue in w.queues]
    if any(job_type in w.types for w in on_queue):
        return None
    if not on_queue:
        return f"no live worker serves {job_type}: none consumes queue {queue}"
    names = ", ".join(w.name for w in on_queue)
    return (
        f"no live worker serves {job_type}: the workers on queue {queue} ({names}) "
        "do not declare it and fail it with UnknownJobType"
    )


def touch(path: Path) -> None:
    """Set ``path``'s modification time to now, creating it (and its folder) if needed."""
    try:
        path.touch()
    except FileNotFoundError:
        private_dir(path.parent)  # under CONVEYOR_HOME, which may not exist yet
        path.touch()
    except OSError as exc:
        log.warning("could not touch heartbeat file %s: %s", path, exc)
