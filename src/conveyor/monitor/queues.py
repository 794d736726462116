"""Queues and workers as operators read them: depths, oldest message age, consumers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from conveyor import keys
from conveyor.broker.inspect import delayed_count, queue_depths, reserved_count
from conveyor.engine.message import message_body
from conveyor.engine.transport import LEVELS
from conveyor.topology import Topology
from conveyor.worker.heartbeats import live_workers


@dataclass
class QueueView:
    """One queue's backlog and who consumes it."""

    name: str
    priority: int
    length: int
    levels: dict[int, int]
    oldest_age_s: float | None
    consumers: int
    workers: int


def _message_job_id(raw: bytes) -> str | None:
    try:
        message: dict[str, Any] = json.loads(raw)
    except ValueError:
        return None
    headers = message.get("headers") or {}
    job_id = headers.get("id")
    if isinstance(job_id, str):
        return job_id
    # Celery protocol 1 keeps the id in the body.
    try:
        body = message_body(message)
    except (ValueError, TypeError):
        return None
    return body.get("id") if isinstance(body, dict) else None


def queue_views(client: redis.Redis, topology: Topology, heartbeat_s: float) -> list[QueueView]:
    """Every queue, most urgent first, with the age of its oldest waiting message."""
    depths = queue_depths(client, topology)
    workers = live_workers(client, heartbeat_s)
    # The oldest message of each non-empty list is at its tail (LPUSH in, BRPOP out).
    pipe = client.pipeline(transaction=False)
    probes: list[str] = []
    for depth in depths:
        for level in LEVELS:
            if depth.levels.get(level):
                pipe.lindex(keys.queue_list(depth.name, level), -1)
                probes.append(depth.name)
    tails = pipe.execute() if probes else []
    ids: dict[str, list[str]] = {}
    for name, raw in zip(probes, tails, strict=True):
        job_id = _message_job_id(raw) if raw else None
        if job_id:
            ids.setdefault(name, []).append(job_id)
    created: dict[str, float] = {}
    flat = [(name, job_id) for name, found in ids.items() for job_id in found]
    if flat:
        pipe = client.pipeline(transaction=False)
        for _, job_id in flat:
            pipe.hmget(keys.job(job_id), "created_at", "due_at")
        for (name, _), (c, d) in zip(flat, pipe.execute(), strict=True):
            stamp = d or c
            if stamp:
                created[name] = min(created.get(name, float("inf")), float(stamp))
    now = time.time()
    return [
        QueueView(
            name=depth.name,
            priority=depth.priority,
            length=depth.total,
            levels=dict(depth.levels),
            oldest_age_s=round(max(0.0, now - created[depth.name]), 3)
            if depth.name in created
            else None,
            consumers=sum(w.concurrency for w in workers if depth.name in w.queues),
            workers=sum(1 for w in workers if depth.name in w.queues),
        )
        for depth in depths
    ]


def backlog_totals(client: redis.Redis) -> tuple[int, int]:
    """(delayed, reserved) job counts outside the queue lists."""
    return delayed_count(client), reserved_count(client)
