"""Progress reports, and the cooperative cancellation check that rides on them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import redis

from conveyor.broker.outage import unavailable
from conveyor.middleware.policy import Policy

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution

log = logging.getLogger("conveyor.worker")


class Progress(Policy):
    """Gives ``ctx.progress(percent, stage, message)`` its meaning.

    Each report is a ``progress`` event (the live state's ``progress``, ``stage`` and
    ``message``, the job's pub/sub channel, the stream), written in one round trip
    that also tells whether the job was cancelled meanwhile: then ``ctx.progress()``
    raises :class:`~conveyor.JobCancelled`, so a cancelled running job stops at its
    next report. A broker that is unavailable loses the report, never the job.

    Without this middleware ``ctx.progress()`` still checks its argument and returns,
    writing nothing: a cancelled job runs on until the worker terminates it after
    ``CONVEYOR_CANCEL_GRACE_S`` (:mod:`conveyor.worker.cancel`, which needs no
    middleware). ``ctx.cancelled`` reads the live state in any case.
    """

    def on_progress(
        self, execution: Execution, percent: float, stage: str | None, message: str | None
    ) -> bool:
        """Write the progress event; False when the job was cancelled meanwhile."""
        event = execution._event("progress", progress=percent, stage=stage, message=message)
        fields = {"progress": percent, "stage": stage or "", "message": message or ""}
        try:
            outcome = execution.writer.emit(event, fields=fields)
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            # Progress is best effort: a broker restart must not fail the job itself.
            log.warning(
                "job %s: progress not recorded (broker unavailable: %s)", execution.job_id, exc
            )
            return True
        return outcome.applied or outcome.status != "cancelled"
