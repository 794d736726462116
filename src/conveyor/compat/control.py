"""Celery's ``revoke`` control command, turned into Conveyor cancellations.

``app.control.revoke(id)`` (also ``celery -A … control revoke`` and Flower's
revoke and terminate buttons) only flags the id in each worker's memory: the
job's state would stay ``queued`` or ``started`` forever. Each Conveyor worker
wraps the command so that the revoked jobs are first cancelled as
``Job.cancel()`` does (state ``cancelled``, recorded in the store, kept in
``conveyor:revoked`` so no worker ever runs them), then Celery's own handler
runs (and terminates the process when asked to). Every worker receives the
broadcast; the state change applies once.

``inspect scheduled`` also lists Conveyor's delayed jobs (retries, ETAs and
countdowns, which wait on the broker rather than in a worker), each under the
workers that consume its queue.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from celery.utils.functional import maybe_list
from celery.worker.control import Panel

from conveyor import keys
from conveyor.errors import NotFound

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.compat")


def cancel_revoked(app: Conveyor, job_ids: list[str]) -> list[str]:
    """Cancel each of ``job_ids`` that is still live; return those this call cancelled."""
    cancelled = []
    client = app.redis
    for job_id in job_ids:
        try:
            if not client.exists(keys.job(job_id)):
                # Not (yet) a live Conveyor job, e.g. a stock message waiting to be
                # adopted: its adoption finds the id here and records it cancelled.
                client.zadd(keys.REVOKED, {job_id: time.time()})
                continue
            if app.get_job(job_id).cancel():
                cancelled.append(job_id)
        except NotFound:
            continue
        except Exception:
            log.exception("job %s: could not record its revocation", job_id)
    return cancelled


def delayed_requests(app: Conveyor, queues: list[str], limit: int = 1000) -> list[dict[str, Any]]:
    """Conveyor's delayed jobs on ``queues`` as ``inspect scheduled`` entries, soonest first."""
    client = app.redis
    due = cast(
        list[tuple[bytes, float]], client.zrange(keys.DELAYED, 0, limit - 1, withscores=True)
    )
    if not due:
        return []
    specs = cast(list[bytes | None], client.hmget(keys.DELAYED_JOBS, [i for i, _ in due]))
    entries = []
    for (raw_id, score), raw in zip(due, specs, strict=True):
        if raw is None:
            continue
        spec = json.loads(raw)
        if spec.get("queue") not in queues:
            continue
        entries.append(
            {
                "eta": datetime.fromtimestamp(score, UTC).isoformat(),
                "priority": spec.get("priority"),
                "request": {
                    "id": raw_id.decode(),
                    "name": spec.get("type"),
                    "args": [spec.get("payload")],
                    "kwargs": {"meta": {"attempt": spec.get("attempt", 0)}},
                    "type": spec.get("type"),
                    "hostname": None,
                    "time_start": None,
                    "acknowledged": False,
                    "delivery_info": {
                        "routing_key": spec.get("queue"),
                        "priority": spec.get("priority"),
                    },
                    "worker_pid": None,
                },
            }
        )
    return entries


def install_scheduled(app: Conveyor, queues: list[str]) -> None:
    """Make ``inspect scheduled`` also list Conveyor's delayed jobs on this worker's queues."""
    original: Callable[..., Any] = Panel.data["scheduled"]
    if getattr(original, "conveyor_wrapped", False):
        return

    def scheduled(state: Any, **kwargs: Any) -> Any:
        held = list(original(state, **kwargs) or [])
        try:
            return held + delayed_requests(app, queues)
        except Exception:
            log.exception("could not list delayed jobs for inspect scheduled")
            return held

    scheduled.conveyor_wrapped = True  # type: ignore[attr-defined]
    scheduled.__doc__ = original.__doc__
    Panel.data["scheduled"] = scheduled


def install_revoke(app: Conveyor) -> None:
    """Wrap this process's ``revoke`` control command (idempotent)."""
    original: Callable[..., Any] = Panel.data["revoke"]
    if getattr(original, "conveyor_wrapped", False):
        return

    def revoke(
        state: Any, task_id: Any, terminate: bool = False, signal: Any = None, **kwargs: Any
    ) -> Any:
        ids = [str(i) for i in maybe_list(task_id) or []]
        cancelled = cancel_revoked(app, ids)
        if cancelled:
            log.info("revoked job(s) cancelled: %s", ", ".join(cancelled))
        return original(state, task_id, terminate, signal, **kwargs)

    revoke.conveyor_wrapped = True  # type: ignore[attr-defined]
    revoke.__doc__ = original.__doc__
    Panel.data["revoke"] = revoke
