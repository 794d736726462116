"""Running one delivery of a job: state changes, validation, retries and outcome."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from kombu.utils.encoding import safe_repr
from pydantic import BaseModel

from conveyor import keys
from conveyor.broker.outage import BROKER_DOWN_WAIT_S, wait_for_broker
from conveyor.engine.events import task_fields
from conveyor.engine.start import Started
from conveyor.enqueue import enqueue
from conveyor.errors import (
    Defer,
    JobCancelled,
    PayloadInvalid,
    PermanentError,
    ResultNotSerializable,
    SkipJob,
)
from conveyor.events import TERMINAL, Transition, new_event
from conveyor.jobs import JobContext, JobDefinition, remove_job_tempdirs
from conveyor.middleware import policy
from conveyor.middleware.chain import CONTROL, call_hooks
from conveyor.middleware.outcome import Outcome
from conveyor.submission import Submission

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.worker")

T = TypeVar("T")

__all__ = ["Execution", "encode_result", "record_hard_time_limit"]

#: Markers for :meth:`Execution._before_job`: input not validated yet / job handled.
_UNVALIDATED = object()
_HANDLED = object()


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
        #: Where the job runs: "cpu" when forced (a GPU out-of-memory retry), else "cuda"
        #: for a job that uses a GPU on a worker that has one.
        self.device = str(meta.get("device") or _default_device(definition))
        self.writer = app.event_writer()
        self.celery_events = app.celery_events
        #: Whether state changes carry Celery task events (the FlowerEvents middleware).
        self.flower = app.hooks.flower_events
        #: How long a write waits for a broker that refuses writes (None: as long as it
        #: takes; the message stays unacknowledged meanwhile).
        self.refused_wait_s: float | None = None

    def _write(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a state write that must not be lost, waiting for the broker as needed."""
        return wait_for_broker(func, *args, refused_wait_s=self.refused_wait_s, **kwargs)

    def _celery(self, kind: str, **fields: Any) -> tuple[str, str]:
        return self.celery_events.event(kind, {"uuid": self.job_id, **fields}, self.worker)

    # ------------------------------------------------------------------ events

    def _spec(self, attempt: int, due_at: float) -> Submission:
        """The submission of this job's attempt ``attempt``, due at ``due_at``."""
        return Submission.of_delivery(
            self.job_id,
            self.definition.name,
            self.payload,
            self.meta,
            queue=self.queue,
            priority=self.priority,
            attempt=attempt,
            due_at=due_at,
            device=None,
        )

    def _reschedule(
        self,
        attempt: int,
        due_at: float,
        event: dict[str, Any],
        fields: dict[str, Any],
        *,
        device: str | None = None,
        celery: list[tuple[str, str]] | None = None,
    ) -> None:
        """Enqueue attempt ``attempt`` for ``due_at`` (on its queue when due now, else on the
        delayed set) and write ``event``, in one atomic round trip."""
        submission = self._spec(attempt, due_at)
        if device is not None:
            submission = submission.but(device=device)
        enqueue(self.app, submission, event, fields, celery=celery)

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
        """Hand a progress report to the middleware that records it (:class:`~conveyor.
        middleware.Progress`); False when the job was cancelled meanwhile. Without such
        middleware nothing is written and the job goes on."""
        hooks = self.app.hooks
        if not hooks.on_progress:
            return True
        return policy.on_progress(hooks.on_progress, self, percent, stage, message)

    def is_cancelled(self) -> bool:
        """Whether the job's live state says cancelled."""
        status = self.writer.client.hget(keys.job(self.job_id), "status")
        return status == b"cancelled"

    # --------------------------------------------------------------- execution

    def run(self, started: Started | None = None) -> Any:
        """Run this delivery to its end; never raises for a job's own failure.

        A policy may handle the delivery before its start (put it back for later), or
        refuse the job (one no worker can take in time): then it is not run, and the
        refusal is recorded as its failure. ``started``: the start the fetch already
        recorded (:mod:`conveyor.engine.start`; only for jobs no policy decides on first).
        """
        hooks = self.app.hooks
        refused: PermanentError | None = None
        ctx = JobContext(self)
        params: Any = _UNVALIDATED
        if started is not None:
            start = Transition([started.applied, started.status, started.deliveries])
            started_at = started.started_at
        else:
            if hooks.before_start:
                verdict = policy.before_start(hooks.before_start, self)
                if verdict is True:
                    return None
                if isinstance(verdict, PermanentError):
                    refused = verdict
            if refused is None and self.app.before_job_hooks:
                params = self._before_job(ctx)
                if params is _HANDLED:
                    return None
            started_at = time.time()
            start = self._start(started_at)
        if not start.applied:
            if start.status in TERMINAL:
                log.info("job %s is already %s; not running it", self.job_id, start.status)
                if start.status == "cancelled":
                    self._after(Outcome("cancelled"))
                return None
            log.info(
                "job %s: stale delivery (status %s); not running it", self.job_id, start.status
            )
            return None
        self.deliveries = start.deliveries
        if refused is not None:
            self._handle_error(refused, started_at)
            return None
        if hooks.after_start and policy.after_start(hooks.after_start, self, started_at):
            return None
        try:
            if params is _UNVALIDATED:
                params = self.definition.validate(self.payload)
            result = self.definition.func(ctx, params)
        except JobCancelled as exc:
            log.info("job %s stopped: cancelled", self.job_id)
            self._after(Outcome("cancelled", error=exc))
            return None
        except (SystemExit, KeyboardInterrupt):
            # The process is being stopped under the job (SIGTERM after the hard time
            # limit, a cold shutdown): not the job's failure. The main process records
            # a hard limit; otherwise the unacknowledged message is delivered again.
            raise
        except BaseException as exc:
            call_hooks(hooks.on_error, "on_error", ctx, exc, reverse=True)
            self._handle_error(exc, started_at)
            if not isinstance(exc, Exception):
                raise
            return None
        finally:
            remove_job_tempdirs(self.job_id)
        finished_at = time.time()
        value = _jsonable(result)
        try:
            encoded = encode_result(value)
        except (TypeError, ValueError) as exc:
            self._handle_error(
                ResultNotSerializable(
                    f"the job returned a {type(result).__name__} that JSON cannot encode: {exc}"
                ),
                started_at,
            )
            return None
        # The result exists only here: ride out a broker outage rather than lose it.
        self._write(
            self.writer.emit,
            self._event("succeeded", result=value, runtime_s=finished_at - started_at),
            fields={
                # Always JSON in the live state, so a string result reads back as a string.
                "result": encoded,
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
            ]
            if self.flower
            else None,
        )
        self._after(Outcome("succeeded", result=result))
        return None

    def _start(self, started_at: float) -> Transition:
        """Record the job started (refused when it is finished, cancelled or stale)."""
        return self._write(
            self.writer.emit,
            self._event("started"),
            fields={
                "type": self.definition.name,
                "queue": self.queue,
                "priority": self.priority,
                "worker": self.worker,
                "started_at": started_at,
                "created_at": self.meta.get("created_at"),
                "device": self.device,
            },
            mode="start",
            celery=[
                self.celery_events.event(
                    "task-received",
                    task_fields(self.job_id, self.definition.name, self.payload, self.meta),
                    self.worker,
                ),
                self._celery("task-started"),
            ]
            if self.flower
            else None,
        )

    def _before_job(self, ctx: JobContext) -> Any:
        """Run the ``before_job`` hooks; the validated input, or :data:`_HANDLED` when a
        hook skipped or deferred the job (done here). Invalid input is left for the
        job's own start to fail."""
        try:
            params = self.definition.validate(self.payload)
        except PayloadInvalid:
            return _UNVALIDATED
        try:
            call_hooks(self.app.before_job_hooks, "before_job", ctx, params, passes=CONTROL)
        except SkipJob as exc:
            self._skip(exc)
            return _HANDLED
        except Defer as exc:
            due_at = time.time() + exc.seconds
            self._reschedule(
                self.attempt,
                due_at,
                self._event("scheduled", due_at=due_at, message=str(exc)),
                {"due_at": due_at},
            )
            log.info("job %s deferred: %s", self.job_id, exc)
            return _HANDLED
        return params

    def _skip(self, exc: SkipJob) -> None:
        """End the job ``cancelled`` without running it (a middleware said so)."""
        message = str(exc) or "skipped by middleware"
        outcome = self.writer.emit(
            self._event("cancelled", message=message),
            fields={"finished_at": time.time(), "message": message},
            celery=[self._celery("task-revoked", terminated=False, signum=None, expired=False)]
            if self.flower
            else None,
        )
        log.info("job %s skipped: %s", self.job_id, message)
        if outcome.applied:
            self._after(Outcome("cancelled", error=exc))

    def _after(self, outcome: Outcome) -> None:
        """Tell the middleware an attempt's recorded outcome (and the job's final one)."""
        hooks = self.app.hooks
        if not (hooks.after_job or (outcome.final and hooks.after_final)):
            return
        ctx = JobContext(self)
        call_hooks(hooks.after_job, "after_job", ctx, outcome, reverse=True)
        if outcome.final:
            call_hooks(hooks.after_final, "after_final", ctx, outcome, reverse=True)

    def _error_fields(self, exc: BaseException) -> dict[str, str]:
        """``error_type``, ``error_message`` and ``traceback`` of ``exc``, as events and
        the live state record them."""
        return {
            "error_type": type(exc).__name__,
            "error_message": _error_message(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }

    def _handle_error(self, exc: BaseException, started_at: float) -> None:
        """Record a failed attempt: as a policy decides (a retry), else failed for good."""
        hooks = self.app.hooks
        if hooks.on_failure:
            outcome = policy.on_failure(hooks.on_failure, self, exc, started_at)
            if outcome is not None:
                self._after(outcome)
                return
        self._fail(exc, started_at)

    def _fail(self, exc: BaseException, started_at: float) -> None:
        """Record the job failed for good (the dead letter goes with the event)."""
        error = self._error_fields(exc)
        error_type, message = error["error_type"], error["error_message"]
        finished_at = time.time()
        # The failed event carries everything the recorder files as the dead letter.
        self._write(
            self.writer.emit,
            self._event(
                "failed",
                priority=self.priority,
                payload=self.payload,
                **error,
                runtime_s=finished_at - started_at,
                failed_at=finished_at,
            ),
            fields={**error, "finished_at": finished_at},
            celery=[
                self._celery("task-failed", exception=safe_repr(exc), traceback=error["traceback"])
            ]
            if self.flower
            else None,
        )
        log.error("job %s failed (%s: %s)", self.job_id, error_type, message)
        hooks = self.app.hooks
        if hooks.after_failed:
            policy.after_failed(
                hooks.after_failed,
                self,
                {
                    "job_id": self.job_id,
                    "type": self.definition.name,
                    "queue": self.queue,
                    "priority": self.priority,
                    "error_type": error_type,
                    "error_message": message,
                    "attempt": self.attempt,
                    "deliveries": self.deliveries,
                    "worker": self.worker,
                    "failed_at": finished_at,
                },
            )
        self._after(Outcome("failed", error=exc))


def _error_message(exc: BaseException) -> str:
    """The error's message; billiard's time-limit exceptions get a readable one."""
    if isinstance(exc, TimeLimitExceeded | SoftTimeLimitExceeded):
        kind = "hard" if isinstance(exc, TimeLimitExceeded) else "soft"
        arg = exc.args[0] if exc.args else None
        if isinstance(arg, str):
            return arg
        within = f" ({arg:g}s)" if isinstance(arg, int | float) else ""
        if kind == "hard":
            return f"hard time limit{within} exceeded; the job's process was killed and replaced"
        return f"soft time limit{within} exceeded"
    return str(exc) or type(exc).__name__


def _default_device(definition: JobDefinition) -> str:
    from conveyor.worker import gpu

    if definition.gpu != "none" and gpu.WORKER_GPUS:
        return "cuda"
    return "cpu"


def encode_result(value: Any) -> str:
    """A job's result as the JSON text kept in its live state.

    Raises ``TypeError`` or ``ValueError`` for a value JSON cannot encode (a circular
    reference, a dict with tuple keys). Values JSON has no type for (a datetime, a
    path) are written as their ``str()``, as in events.
    """
    return json.dumps(value, separators=(",", ":"), default=str)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def record_hard_time_limit(
    app: Conveyor,
    definition: JobDefinition,
    job_id: str,
    payload: Any,
    meta: dict[str, Any],
    exc: BaseException,
) -> None:
    """Record a delivery killed at its hard time limit as a failed attempt.

    Runs in the worker's main process (Celery calls the task's ``on_failure``
    there once billiard has killed the pool process). The killed process wrote
    nothing, so the worker and the delivery count come from the live state; the
    attempt then takes the same path as any failure: retried with backoff while
    retries remain, else failed and dead-lettered. The job's temporary
    directories are removed here, since the killed process could not.
    """
    try:
        live = cast(dict[bytes, bytes], app.redis.hgetall(keys.job(job_id)))
        state = {k.decode(): v.decode() for k, v in live.items()}
        execution = Execution(
            app, definition, job_id, payload, meta, state.get("worker") or "unknown"
        )
        execution.deliveries = int(state.get("deliveries") or 0)
        # Celery's main process: wait for a refusing broker a while, not for ever.
        execution.refused_wait_s = BROKER_DOWN_WAIT_S
        started_at = float(state.get("started_at") or time.time())
        remove_job_tempdirs(job_id)
        execution._handle_error(exc, started_at)
    except Exception:
        log.exception("job %s: could not record its hard time limit", job_id)
