"""What counts as backlog: the figure the worker manager (and external autoscalers) scale on.

A queue's backlog is

* the messages waiting in **every priority sub-list** of the queue
  (``processing``, ``processing:1`` … ``processing:10``);
* plus the messages **reserved** by a worker (delivered, in kombu's ``unacked``
  hash) whose job has **not started** yet;
* plus the **delayed** jobs (delays, retry backoffs) due within the next polling
  interval.

KEDA's Redis list scaler and celery-exporter read one list (``LLEN processing``)
and so miss ten of the eleven priority lists and the reserved work; this module
reads them all in three round trips, whatever the number of queues.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from conveyor import keys
from conveyor.broker.inspect import queue_depths
from conveyor.events import Event, EventKind, MalformedEvent
from conveyor.topology import Topology
from conveyor.worker.rescue import UNACKED

log = logging.getLogger("conveyor.scaling")

#: Job statuses that mean a worker is running the job (not waiting to start it).
RUNNING = frozenset({"started", "progress"})


@dataclass
class QueueBacklog:
    """The backlog of one queue, by where the work sits."""

    queue: str
    waiting: int = 0
    reserved: int = 0
    running: int = 0
    due_soon: int = 0

    @property
    def backlog(self) -> int:
        """Waiting + reserved-not-started + delayed-and-due-soon."""
        return self.waiting + self.reserved + self.due_soon

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the total as ``backlog``."""
        return {**asdict(self), "backlog": self.backlog}


def measure(
    client: redis.Redis, topology: Topology, horizon_s: float, now: float | None = None
) -> dict[str, QueueBacklog]:
    """The backlog of every queue of ``topology`` (queue name → figures)."""
    now = time.time() if now is None else now
    found = {d.name: QueueBacklog(d.name, waiting=d.total) for d in queue_depths(client, topology)}
    for queue, running in _reserved(client):
        entry = found.get(queue)
        if entry is None:
            continue
        if running:
            entry.running += 1
        else:
            entry.reserved += 1
    for queue in _due_soon(client, now + horizon_s):
        entry = found.get(queue)
        if entry is not None:
            entry.due_soon += 1
    return found


def for_queues(measured: dict[str, QueueBacklog], queues: Iterable[str]) -> QueueBacklog:
    """The sum of ``measured`` over ``queues`` (a profile's backlog)."""
    total = QueueBacklog(",".join(queues))
    for name in queues:
        entry = measured.get(name)
        if entry is None:
            continue
        total.waiting += entry.waiting
        total.reserved += entry.reserved
        total.running += entry.running
        total.due_soon += entry.due_soon
    return total


def _reserved(client: redis.Redis) -> list[tuple[str, bool]]:
    """(queue, running?) for every delivered, unacknowledged message."""
    raw = cast(list[bytes], client.hvals(UNACKED))
    deliveries: list[tuple[str, str]] = []
    for value in raw:
        try:
            message, _exchange, routing_key = json.loads(value)
            job_id = str(message["headers"]["id"])
        except (ValueError, KeyError, TypeError):
            continue
        deliveries.append((str(routing_key), job_id))
    if not deliveries:
        return []
    pipe = client.pipeline(transaction=False)
    for _, job_id in deliveries:
        pipe.hget(keys.job(job_id), "status")
    statuses = pipe.execute()
    return [
        (queue, status is not None and status.decode() in RUNNING)
        for (queue, _), status in zip(deliveries, statuses, strict=True)
    ]


def _due_soon(client: redis.Redis, until: float) -> list[str]:
    """The queue of every delayed job due before ``until``."""
    ids = cast(list[bytes], client.zrangebyscore(keys.DELAYED, "-inf", until))
    if not ids:
        return []
    specs = cast(list[bytes | None], client.hmget(keys.DELAYED_JOBS, ids))
    queues = []
    for spec in specs:
        if spec is None:
            continue
        try:
            queues.append(str(json.loads(spec)["queue"]))
        except (ValueError, KeyError, TypeError):
            continue
    return queues


def average_job_time(
    client: redis.Redis, queues: Iterable[str], window_s: float, now: float | None = None
) -> float | None:
    """Mean ``runtime_s`` of the jobs on ``queues`` that succeeded in the last ``window_s``.

    None when no such job finished.
    """
    return mean_runtime(job_times(client, window_s, now), queues)


def mean_runtime(times: dict[str, list[float]], queues: Iterable[str]) -> float | None:
    """The mean of ``times`` (from :func:`job_times`) over ``queues``; None without data."""
    runtimes = [t for queue in queues for t in times.get(queue, [])]
    return sum(runtimes) / len(runtimes) if runtimes else None


def job_times(
    client: redis.Redis, window_s: float, now: float | None = None
) -> dict[str, list[float]]:
    """Queue → runtimes of the jobs that succeeded there in the last ``window_s``.

    Reads the newest entries of the event stream (at most 1,000) in one round
    trip, so its cost is bounded however long the stream is.
    """
    now = time.time() if now is None else now
    since_ms = int((now - window_s) * 1000)
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        client.xrevrange(keys.EVENTS, "+", since_ms, count=1000),
    )
    found: dict[str, list[float]] = {}
    malformed = 0
    for _, fields in entries:
        if b'"succeeded"' not in fields.get(b"e", b""):
            continue
        try:
            event = Event.from_stream(fields)
        except MalformedEvent:
            malformed += 1
            continue
        if event.kind is EventKind.SUCCEEDED and event.runtime_s is not None:
            found.setdefault(str(event.queue), []).append(event.runtime_s)
    if malformed:
        # Debug only: the manager polls every few seconds, and the recorder already
        # warns once about each malformed entry.
        log.debug("job times: skipped %d malformed event(s)", malformed)
    return found
