"""The one enqueue step: a :class:`Submission` onto its queue or the delayed set.

Every way a job attempt is enqueued goes through :func:`enqueue` — a submit
(:func:`submit`, :func:`submit_all` for a batch, a dead-letter replay), a retry or
deferral, the delayed-job mover (:func:`move`), a GPU or unknown-type hand-back
(:func:`hand_back`). It is **one atomic round trip**: the event script of
:mod:`conveyor.events` pushes the job's message (built here, see
:mod:`conveyor.engine.message`) or adds it to the delayed set, removes a mover's
claimed entry from the delayed set, and writes the event and live state, all in
one step. So a crash leaves either all of it or none: a mover that dies after
claiming an entry publishes nothing, and the entry comes back when its claim
ends; a mover whose claim was taken over publishes nothing either.

Only when the message cannot be built here (message compression on, or a broker
transport other than Conveyor's) is it published through Celery's producer
first, as a separate step: there a mover that dies between the two steps may
publish an attempt again when its claim ends (never lose it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from conveyor import delayed
from conveyor.events import DelayedStep, EmitMode, EventType, Transition, new_event
from conveyor.submission import Submission

if TYPE_CHECKING:
    from conveyor.app import Conveyor


def enqueue(
    app: Conveyor,
    submission: Submission,
    event: dict[str, Any] | None,
    fields: dict[str, Any] | None = None,
    *,
    mode: EmitMode = "normal",
    celery: list[tuple[str, str]] | None = None,
    claim: float | None = None,
    client: Any = None,
    now: float | None = None,
) -> Transition:
    """Put ``submission`` on its queue (due now, or a mover's ``claim``ed entry) or on the
    delayed set (due later), and write ``event`` and ``fields``, in one atomic step.

    ``event`` None leaves the job's state as it is (a hand-back). With ``claim`` the
    entry is removed from the delayed set, and nothing at all happens unless the
    entry still holds that claim (:attr:`Transition.published` is then False).
    ``client`` may be a pipeline (see :func:`submit_all`); ``now`` the time the
    caller decided on its event by.
    """
    writer = app.event_writer()
    if claim is None and not submission.is_due(time.time() if now is None else now):
        assert submission.due_at is not None
        added = DelayedStep("add", submission.id, submission.due_at, submission.to_json())
        return writer.emit(
            event, fields=fields, mode=mode, client=client, celery=celery, delayed=added
        )
    arguments = _Arguments(submission)
    push = message(app, submission, arguments)
    step = None if claim is None else DelayedStep("claimed", submission.id, claim)
    if event is not None and app.hooks.flower_events:
        # Flower's `task-sent` for every attempt published, with its own event.
        celery = [*(celery or ()), task_sent_event(app, submission, arguments)]
    if push is None:
        # Publish first: if the broker is down nothing is left behind.
        send_through_celery(app, submission)
    if event is None and step is None:
        if push is not None:
            (client or app.redis).lpush(*push)
        return Transition([0, "", 0, 1])
    return writer.emit(
        event, fields=fields, mode=mode, client=client, celery=celery, push=push, delayed=step
    )


def submit(
    app: Conveyor, submission: Submission, idempotency_key: str | None = None, client: Any = None
) -> Transition:
    """Enqueue a new job: its message (or delayed entry) with its ``queued`` (or
    ``scheduled``) event and its whole live state."""
    now = time.time()
    event, fields = _new_job(submission, idempotency_key, now)
    return enqueue(app, submission, event, fields, mode="init", client=client, now=now)


def submit_all(app: Conveyor, submissions: Sequence[Submission]) -> list[Transition]:
    """Enqueue many new jobs pipelined: one round trip, each job its own atomic step."""
    pipe = app.redis.pipeline(transaction=False)
    for submission in submissions:
        submit(app, submission, client=pipe)
    return [Transition(reply) for reply in pipe.execute()]


def move(app: Conveyor, submission: Submission, claim: float) -> bool:
    """The delayed-job mover's step: publish a claimed entry and remove it from the delayed
    set atomically; False when the claim was lost (nothing published).

    The attempt is recorded ``queued`` again, unless it was handed back for another
    worker (its state never left ``queued``).
    """
    if submission.handed_back:
        return enqueue(app, submission, None, claim=claim).published
    event = new_event(
        "queued",
        submission.id,
        submission.type,
        submission.queue,
        priority=submission.priority,
        attempt=submission.attempt,
    )
    fields = {"due_at": submission.due_at}
    return enqueue(app, submission, event, fields, claim=claim).published


def mover(app: Conveyor, **options: Any) -> delayed.Mover:
    """A delayed-job :class:`~conveyor.delayed.Mover` that publishes through :func:`move`."""
    return delayed.Mover(app.redis, partial(move, app), **options)


def hand_back(app: Conveyor, submission: Submission) -> None:
    """Put an attempt on the delayed set (due at its ``due_at``) without changing its state:
    a job handed back for a worker with a GPU, or one that serves its type."""
    step = DelayedStep("add", submission.id, submission.due_at or 0.0, submission.to_json())
    app.event_writer().emit(None, delayed=step)


def _new_job(
    submission: Submission, idempotency_key: str | None, now: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new job's first event and its live-state fields."""
    due_at = submission.due_at
    fields = {
        "type": submission.type,
        "queue": submission.queue,
        "priority": submission.priority,
        "payload": submission.payload,
        "created_at": submission.created_at,
        "due_at": due_at,
        # The job's own limits, for a re-publish that has no message to read them from
        # (a stalled job re-queued: conveyor.monitor.stalled).
        **submission.limits(),
        **submission.labels,
    }
    kind: EventType = "queued" if submission.is_due(now) else "scheduled"
    extra = {"due_at": due_at} if kind == "scheduled" else {}
    event = new_event(
        kind,
        submission.id,
        submission.type,
        submission.queue,
        priority=submission.priority,
        payload=submission.payload,
        **extra,
        idempotency_key=idempotency_key,
        created_at=submission.created_at,
        **submission.labels,
    )
    return event, fields


class _Arguments:
    """A submission's task arguments and their display forms, worked out once for its
    message and its ``task-sent`` event."""

    __slots__ = ("args", "argsrepr", "kwargs", "kwargsrepr", "meta")

    def __init__(self, submission: Submission) -> None:
        self.meta = submission.meta()
        self.args = [submission.payload]
        self.kwargs = {"meta": self.meta}
        self.argsrepr = _repr_json(self.args)
        self.kwargsrepr = _repr_json(self.kwargs)


def message(
    app: Conveyor, submission: Submission, arguments: _Arguments | None = None
) -> tuple[str, str] | None:
    """``(list, JSON)``: the job's broker message, or None to publish through Celery.

    Built here on Conveyor's Redis transport without compression (see
    :mod:`conveyor.engine.message`); through Celery's producer otherwise.
    """
    # Here, not at import: Celery and kombu cost a quick command (`conveyor status`) a lot.
    from conveyor.engine.message import redis_message
    from conveyor.engine.transport import TRANSPORT_PATH

    conf = app.celery.conf
    if conf.broker_transport != TRANSPORT_PATH or conf.task_compression:
        return None
    if arguments is None:
        arguments = _Arguments(submission)
    return redis_message(
        app.celery,
        task_id=submission.id,
        name=submission.type,
        args=arguments.args,
        kwargs=arguments.kwargs,
        queue=submission.queue,
        priority=submission.priority,
        argsrepr=arguments.argsrepr,
        kwargsrepr=arguments.kwargsrepr,
        time_limit=submission.time_limit,
        soft_time_limit=submission.soft_time_limit,
    )


def send_through_celery(app: Conveyor, submission: Submission) -> None:
    """Publish the job's message with Celery's own producer (``send_task``)."""
    kwargs = {"meta": submission.meta()}
    limits: dict[str, Any] = submission.limits()
    app.celery.send_task(
        submission.type,
        args=[submission.payload],
        kwargs=kwargs,
        task_id=submission.id,
        queue=submission.queue,
        routing_key=submission.queue,
        priority=submission.priority,
        # Celery builds these with saferepr, a third of the publish's CPU time;
        # compact JSON (what Flower shows) costs a tenth of that.
        argsrepr=_repr_json([submission.payload]),
        kwargsrepr=_repr_json(kwargs),
        **limits,
    )


def task_sent_event(
    app: Conveyor, submission: Submission, arguments: _Arguments | None = None
) -> tuple[str, str]:
    """The Celery ``task-sent`` event (for Flower) of one published attempt.

    Its ``args`` and ``kwargs`` are the message's ``argsrepr`` and ``kwargsrepr``, as
    Celery's own ``send_task`` reports them.
    """
    if arguments is None:
        arguments = _Arguments(submission)
    queue = submission.queue
    fields = {
        "uuid": submission.id,
        "name": submission.type,
        "args": arguments.argsrepr,
        "kwargs": arguments.kwargsrepr,
        "retries": submission.attempt,
        "eta": None,
        "expires": None,
        "root_id": submission.id,
        "parent_id": None,
        "queue": queue,
        "exchange": queue,
        "routing_key": queue,
    }
    return app.celery_events.event("task-sent", fields)


_compact_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _repr_json(value: Any, limit: int = 1024) -> str:
    """A compact, bounded display form of a task's arguments (Celery's argsrepr)."""
    text = _compact_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
