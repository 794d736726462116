"""Running waiting jobs in the calling process, through the real executor and middleware.

:func:`conveyor.testing.drain` is built on this: a team's unit tests submit jobs
to a real broker and run them here in milliseconds, with the same state changes,
retries, dead letters and middleware hooks a worker applies, but no worker
process (so no time limits, pool or heartbeat).
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

from conveyor import keys
from conveyor.engine.message import message_body
from conveyor.engine.transport import LEVELS_URGENT_FIRST
from conveyor.enqueue import mover as delayed_mover
from conveyor.errors import UnknownJobType
from conveyor.topology import DEAD_LETTER
from conveyor.worker.executor import Execution

if TYPE_CHECKING:
    from conveyor.app import Conveyor


def decode(raw: bytes) -> tuple[str, str, Any, dict[str, Any], int | None]:
    """``(task name, job id, payload, meta, priority)`` of a message on a queue list."""
    envelope = json.loads(raw)
    headers = envelope["headers"]
    body = message_body(envelope)
    args, kwargs = body[0], body[1]
    payload = args[0] if args else None
    meta = dict((kwargs or {}).get("meta") or {})
    priority = (envelope.get("properties") or {}).get("priority")
    return str(headers["task"]), str(headers["id"]), payload, meta, priority


def run_waiting(
    app: Conveyor,
    *,
    queues: list[str] | None = None,
    max_jobs: int = 10_000,
    delayed_within_s: float | None = None,
    worker: str | None = None,
) -> list[str]:
    """Run jobs from ``queues`` (every queue but dead letters) until none waits.

    With ``delayed_within_s``, delayed jobs due within that many seconds (retries
    with backoff, ``delay=``) are moved to their queues first, again after each
    job. Messages of tasks this app does not know are left on their lists.
    Returns the ids run, in order (a retried job appears once per attempt).
    """
    names = queues or [q for q in app.topology.queue_names() if q != DEAD_LETTER]
    worker = worker or f"inline-{socket.gethostname()}"
    mover = delayed_mover(app) if delayed_within_s is not None else None
    ran: list[str] = []
    foreign: list[tuple[str, bytes]] = []
    while len(ran) < max_jobs:
        if mover is not None:
            mover.move_due(now=time.time() + (delayed_within_s or 0.0))
        found = _next_message(app, names)
        if found is None:
            break
        key, raw = found
        name, job_id, payload, meta, priority = decode(raw)
        try:
            definition = app.definition(name)
        except UnknownJobType:
            foreign.append((key, raw))
            continue
        queue = key.split(keys.PRIORITY_SEP, 1)[0]
        meta.setdefault("queue", queue)
        meta.setdefault("priority", priority)
        Execution(app, definition, job_id, payload, meta, worker).run()
        ran.append(job_id)
    for key, raw in foreign:
        app.redis.rpush(key, raw)  # back at the head, where it was taken from
    return ran


def _next_message(app: Conveyor, queues: list[str]) -> tuple[str, bytes] | None:
    for queue in queues:
        for level in LEVELS_URGENT_FIRST:
            key = keys.queue_list(queue, level)
            raw = app.redis.rpop(key)
            if raw is not None:
                return key, bytes(raw)  # type: ignore[arg-type]
    return None
