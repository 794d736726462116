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
import threading
import time
from dataclasses import dataclass
from typing import cast

import redis
from redis.typing import EncodableT, FieldT

from conveyor import keys

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
    ) -> None:
        self.client = client
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
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Write the description and renew the heartbeat (one round trip)."""
        ttl = max(1, int(self.interval_s * MISSED_BEATS) + 1)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(keys.worker(self.name), mapping=self.description)
        pipe.expire(keys.worker(self.name), ttl)
        pipe.zadd(keys.WORKERS, {self.name: time.time()})
        pipe.execute()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except redis.RedisError as exc:
                log.warning("heartbeat of %s failed: %s", self.name, exc)

    def start(self) -> None:
        """Register now and keep the heartbeat going in a daemon thread."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name="conveyor-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and unregister."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
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
            )
        )
    return found
