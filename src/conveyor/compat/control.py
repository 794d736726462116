"""Celery's ``revoke`` control command, turned into Conveyor cancellations.

``app.control.revoke(id)`` (also ``celery -A … control revoke`` and Flower's
revoke and terminate buttons) only flags the id in each worker's memory: the
job's state would stay ``queued`` or ``started`` forever. Each Conveyor worker
wraps the command so that the revoked jobs are first cancelled as
``Job.cancel()`` does (state ``cancelled``, recorded in the store, kept in
``conveyor:revoked`` so no worker ever runs them), then Celery's own handler
runs (and terminates the process when asked to). Every worker receives the
broadcast; the state change applies once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
