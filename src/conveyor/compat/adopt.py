"""Turning a stock Celery message into a Conveyor job.

A producer that does not use Conveyor's client (``send_task``, ``apply_async``,
``delay``, beat) sends Celery's own message: ``kwargs`` (or one positional dict)
as the input, Celery's 0-is-most-urgent priority, perhaps an ETA, perhaps a
queue Conveyor does not know. When such a message reaches a worker, it is
*adopted*: validated and submitted again as an ordinary Conveyor job under the
**same id** (so ``AsyncResult(id)`` and the job's API follow it), on its job
type's queue at the mapped level (:func:`conveyor.compat.stock.conveyor_level`),
or on the delayed set when it carries an ETA. What cannot run — an unknown job
type, an input that fails validation, positional arguments — becomes a
``failed`` job with a dead letter, never a silent loss.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kombu.utils.encoding import safe_repr

from conveyor import enqueue, keys
from conveyor.compat.stock import conveyor_level
from conveyor.errors import InvalidSubmission, UnknownJobType
from conveyor.events import new_event
from conveyor.jobs import JobDefinition
from conveyor.middleware import policy
from conveyor.submission import Submission
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY
from conveyor.worker.executor import Execution
from conveyor.worker.unknown import stand_in_definition

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.compat")


class Unrunnable(InvalidSubmission):
    """A stock message Conveyor cannot run as a job (its arguments have no payload form)."""


@dataclass
class StockMessage:
    """The parts of a Celery (protocol 2) task message that adoption reads."""

    id: str
    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    priority: Any = None
    routing_key: str | None = None
    eta: str | None = None
    timelimit: tuple[float | None, float | None] = (None, None)

    @classmethod
    def from_kombu(cls, message: Any) -> StockMessage:
        """Read a delivered kombu message (headers, decoded body, properties)."""
        headers = message.headers or {}
        body = message.decode()
        args, kwargs = (body[0], body[1]) if isinstance(body, list | tuple) else ([], {})
        limits = headers.get("timelimit") or (None, None)
        return cls(
            id=str(headers["id"]),
            name=str(headers["task"]),
            args=list(args or []),
            kwargs=dict(kwargs or {}),
            priority=(message.properties or {}).get("priority"),
            routing_key=(message.delivery_info or {}).get("routing_key"),
            eta=headers.get("eta"),
            timelimit=(limits[0], limits[1]) if len(limits) == 2 else (None, None),
        )

    def payload(self) -> Any:
        """The job's input: ``kwargs``, or a single positional dict (Conveyor's own form)."""
        if isinstance(self.kwargs.get("meta"), dict) and len(self.args) == 1:
            return self.args[0]
        if not self.args:
            return self.kwargs
        if len(self.args) == 1 and isinstance(self.args[0], dict) and not self.kwargs:
            return self.args[0]
        raise Unrunnable(
            f"{self.name}: a Conveyor job takes its input as keyword arguments "
            f"(send_task(name, kwargs={{...}})); got positional arguments {safe_repr(self.args)}"
        )

    def recorded_payload(self) -> dict[str, Any]:
        """The input as recorded with the job: the payload, else the raw arguments."""
        try:
            payload = self.payload()
        except Unrunnable:
            return {"args": self.args, "kwargs": self.kwargs}
        return payload if isinstance(payload, dict) else {"payload": payload}

    def due_at(self) -> float | None:
        """The ETA (or countdown) as unix seconds, or None."""
        if not self.eta:
            return None
        when = datetime.fromisoformat(self.eta)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()


def default_level(app: Conveyor, definition: JobDefinition, queue: str) -> int:
    """The level a job of ``definition`` on ``queue`` gets when its sender named none."""
    if definition.priority is not None:
        return definition.priority
    return max(MIN_PRIORITY, min(MAX_PRIORITY, app.topology.queue(queue).priority))


def adopt(app: Conveyor, message: StockMessage) -> str:
    """Submit ``message`` as a Conveyor job under its own id; return the job's new status.

    ``"queued"`` or ``"scheduled"`` when it was submitted, ``"failed"`` when it was
    refused (recorded, with a dead letter), ``"known"`` when a job with that id
    already exists (a redelivery of a message adopted before).
    """
    if app.redis.exists(keys.job(message.id)):
        return "known"
    if app.redis.zscore(keys.REVOKED, message.id) is not None:
        record_cancelled(app, message)
        return "cancelled"
    try:
        definition = app.definition(message.name)
    except UnknownJobType as exc:
        refuse(app, message, _known(app, message.routing_key, app.topology.default_queue), exc)
        return "failed"
    queue = _known(app, message.routing_key, app.queue_for(definition))
    level = conveyor_level(message.priority, default_level(app, definition, queue))
    try:
        params = definition.validate(message.payload())
        due_at = message.due_at()
    except (InvalidSubmission, ValueError) as exc:
        refuse(app, message, queue, exc, level)
        return "failed"
    hard, soft = message.timelimit
    submission = Submission(
        id=message.id,
        type=definition.name,
        payload=params.model_dump(mode="json"),
        queue=queue,
        priority=level,
        attempt=0,
        created_at=time.time(),
        due_at=due_at,
        time_limit=hard,
        soft_time_limit=soft,
    )
    # The client's own enqueue: the message and its queued/scheduled event in one step.
    enqueue.submit(app, submission.but(labels={"tags": ["celery"]}))
    log.info(
        "adopted Celery message %s (%s) onto %s at level %d", message.id, message.name, queue, level
    )
    return "scheduled" if due_at is not None and due_at > time.time() else "queued"


def record_cancelled(app: Conveyor, message: StockMessage) -> None:
    """Record ``message`` as a job cancelled before it ran (it was revoked while waiting)."""
    now = time.time()
    payload = message.recorded_payload()
    queue = _known(app, message.routing_key, app.topology.default_queue)
    event = new_event("cancelled", message.id, message.name, queue, payload=payload, created_at=now)
    fields = {
        "type": message.name,
        "queue": queue,
        "payload": payload,
        "created_at": now,
        "finished_at": now,
    }
    revoked = app.celery_events.event(
        "task-revoked", {"uuid": message.id, "terminated": False, "signum": None, "expired": False}
    )
    app.event_writer().emit(
        event, fields=fields, celery=[revoked] if app.hooks.flower_events else None
    )


def _known(app: Conveyor, queue: str | None, fallback: str) -> str:
    return queue if queue is not None and queue in app.topology.queues else fallback


def refuse(
    app: Conveyor,
    message: StockMessage,
    queue: str,
    exc: Exception,
    priority: int | None = None,
) -> None:
    """Record ``message`` as a failed job with a dead letter (it cannot run)."""
    now = time.time()
    payload = message.recorded_payload()
    error_type = type(exc).__name__
    text = str(exc)
    writer = app.event_writer()
    event = new_event(
        "failed",
        message.id,
        message.name,
        queue,
        priority=priority,
        payload=payload,
        error_type=error_type,
        error_message=text,
        runtime_s=0.0,
        created_at=now,
        failed_at=now,
    )
    fields = {
        "type": message.name,
        "queue": queue,
        "priority": priority,
        "payload": payload,
        "created_at": now,
        "error_type": error_type,
        "error_message": text,
        "finished_at": now,
    }
    failed = app.celery_events.event(
        "task-failed", {"uuid": message.id, "exception": safe_repr(exc), "traceback": ""}
    )
    writer.emit(event, fields=fields, celery=[failed] if app.hooks.flower_events else None)
    log.error("Celery message %s (%s) refused: %s: %s", message.id, message.name, error_type, text)
    hooks = app.hooks
    if not hooks.after_failed:
        return
    # The executor's path for a job failed for good: the policies' after_failed hooks
    # (DeadLetters publishes the dead-letter message; without it, none is sent).
    definition = app.definitions.get(message.name) or stand_in_definition(message.name)
    meta = {"attempt": 0, "queue": queue, "priority": priority, "created_at": now}
    execution = Execution(app, definition, message.id, payload, meta, "adoption")
    policy.after_failed(
        hooks.after_failed,
        execution,
        {
            "job_id": message.id,
            "type": message.name,
            "queue": queue,
            "priority": priority,
            "error_type": error_type,
            "error_message": text,
            "attempt": 0,
            "deliveries": 0,
            "worker": None,
            "failed_at": now,
        },
    )
