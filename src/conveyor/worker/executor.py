"""Running one delivery of a job: state changes, validation, retries and outcome."""

from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from kombu.utils.encoding import safe_repr
from pydantic import BaseModel

from conveyor import keys
from conveyor.celery_events import task_fields
from conveyor.delayed import schedule
from conveyor.errors import JobCancelled, PayloadInvalid, PermanentError, TransientError
from conveyor.events import TERMINAL, new_event
from conveyor.jobs import JobContext, JobDefinition, backoff_delay

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.worker")


class Execution:
    """One delivery of one job in a worker process."""

    def __init__(
        self,
        app: Conveyor,
        definition: JobDefinition,
        job_id: str,
        payload: Any,
        meta: dict[str, Any],
        worker: str,
    ) -> None:
        self.app = app
        self.definition = definition
        self.job_id = job_id
        self.payload = payload
        self.meta = meta
        self.worker = worker
        self.attempt = int(meta.get("attempt", 0))
        self.queue = str(meta.get("queue") or app.queue_for(definition))
        self.priority = meta.get("priority")
        self.deliveries = 0
        self.writer = app.event_writer()
        self.celery_events = app.celery_events

    def _celery(self, kind: str, **fields: Any) -> tuple[str, str]:
        return self.celery_events.event(kind, {"uuid": self.job_id, **fields}, self.worker)

    # ------------------------------------------------------------------ events

    def _event(self, kind: Any, **extra: Any) -> dict[str, Any]:
        return new_event(
            kind,
            self.job_id,
            self.definition.name,
            self.queue,
            attempt=self.attempt,
            deliveries=self.deliveries,
            worker=self.worker,
            **extra,
        )

    def report_progress(self, percent: float, stage: str | None, message: str | None) -> bool:
        """Write a progress event; False when the job was cancelled meanwhile."""
        event = self._event("progress", progress=percent, stage=stage, message=message)
        fields = {"progress": percent, "stage": stage or "", "message": message or ""}
        outcome = self.writer.emit(event, fields=fields)
        return outcome.applied or outcome.status != "cancelled"

    def is_cancelled(self) -> bool:
        """Whether the job's live state says cancelled."""
        status = self.writer.client.hget(keys.job(self.job_id), "status")
        return status == b"cancelled"

    # --------------------------------------------------------------- execution

    def run(self) -> Any:
        """Run this delivery to its end; never raises for a job's own failure."""
        started_at = time.time()
        start = self.writer.emit(
            self._event("started"),
            fields={
                "type": self.definition.name,
                "queue": self.queue,
                "priority": self.priority,
                "worker": self.worker,
                "started_at": started_at,
                "created_at": self.meta.get("created_at"),
            },
            mode="start",
            celery=[
                self.celery_events.event(
                    "task-received",
                    task_fields(self.job_id, self.definition.name, self.payload, self.meta),
                    self.worker,
                ),
                self._celery("task-started"),
            ],
        )
        if not start.applied:
            if start.status in TERMINAL:
                log.info("job %s is already %s; not running it", self.job_id, start.status)
                return None
            log.info(
                "job %s: stale delivery (status %s); not running it", self.job_id, start.status
            )
            return None
        self.deliveries = start.deliveries
        ctx = JobContext(self)
        middleware = self.app.middleware
        try:
            params = self.definition.validate(self.payload)
            for mw in middleware:
                mw.before_job(ctx, params)
            result = self.definition.func(ctx, params)
            for mw in reversed(middleware):
                mw.after_job(ctx, result)
        except JobCancelled:
            log.info("job %s stopped: cancelled", self.job_id)
            return None
        except BaseException as exc:
            for mw in reversed(middleware):
                mw.on_error(ctx, exc)
            self._handle_error(exc, started_at)
            if not isinstance(exc, Exception):
                raise
            return None
        finished_at = time.time()
        value = _jsonable(result)
        self.writer.emit(
            self._event("succeeded", result=value, runtime_s=finished_at - started_at),
            fields={
                "result": value,
                "finished_at": finished_at,
                "progress": 100.0,
                # An earlier attempt's error no longer describes the job.
                "error_type": "",
                "error_message": "",
                "traceback": "",
            },
            celery=[
                self._celery(
                    "task-succeeded", result=safe_repr(value), runtime=finished_at - started_at
                )
            ],
        )
        return None

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, PermanentError | PayloadInvalid):
            return False
        if isinstance(exc, TransientError | SoftTimeLimitExceeded):
            return True
        return isinstance(exc, self.definition.transient)

    def _handle_error(self, exc: BaseException, started_at: float) -> None:
        error_type = type(exc).__name__
        message = str(exc) or error_type
        trace = "".join(traceback.format_exception(exc))
        retries = self.app.retries_for(self.definition)
        finished_at = time.time()
        if self._is_transient(exc) and self.attempt < retries:
            schedule_ = self.definition.backoff
            if schedule_ is None:
                schedule_ = self.app.settings.default_backoff_s
            delay = backoff_delay(schedule_, self.attempt, self.app.settings.backoff_max_s)
            due_at = finished_at + delay
            spec = self.app.submission_spec(
                self.definition,
                self.job_id,
                self.payload,
                queue=self.queue,
                priority=self.priority,
                attempt=self.attempt + 1,
                created_at=self.meta.get("created_at"),
                due_at=due_at,
            )
            pipe = self.writer.client.pipeline(transaction=True)
            schedule(pipe, self.job_id, due_at, spec)
            self.writer.emit(
                self._event(
                    "retrying",
                    error_type=error_type,
                    error_message=message,
                    traceback=trace,
                    retry_in_s=delay,
                ),
                fields={
                    "error_type": error_type,
                    "error_message": message,
                    "traceback": trace,
                    "due_at": due_at,
                },
                client=pipe,
                celery=[self._celery("task-retried", exception=safe_repr(exc), traceback=trace)],
            )
            pipe.execute()
            log.warning(
                "job %s attempt %d failed (%s: %s); retry in %.1fs",
                self.job_id,
                self.attempt,
                error_type,
                message,
                delay,
            )
            return
        self.writer.emit(
            self._event(
                "failed",
                error_type=error_type,
                error_message=message,
                traceback=trace,
                runtime_s=finished_at - started_at,
            ),
            fields={
                "error_type": error_type,
                "error_message": message,
                "traceback": trace,
                "finished_at": finished_at,
            },
            celery=[self._celery("task-failed", exception=safe_repr(exc), traceback=trace)],
        )
        log.error("job %s failed (%s: %s)", self.job_id, error_type, message)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
