"""Jobs of a type this worker cannot run: handed back for a worker that can, or failed.

Several applications may consume one queue: ``conveyor up``'s built-in workers and a
team's own worker (``CONVEYOR_APP=myproject.jobs:app``) both take from ``generation``.
Celery's own answer to a message whose task it does not know is to log "Received
unregistered task" and drop it (``Consumer.on_unknown_task``), which leaves the job
``queued`` forever. Conveyor's consumer instead:

* **hands the job back** when a live worker that consumes the job's queue serves its
  type (every worker lists the types it serves in its heartbeat, see
  :mod:`conveyor.worker.heartbeats`). The job goes onto the delayed set for a moment
  (a longer one at each hand-back, up to :data:`MAX_PAUSE_S`) so that the workers
  that cannot run it do not spin on it while the one that can is busy; the worker's
  mover publishes it again. Each hand-back counts one hop on the job's live state;
  past ``CONVEYOR_UNKNOWN_TYPE_MAX_HOPS`` the job fails.
* **fails the job** with :class:`~conveyor.errors.UnknownJobType` (and a dead letter,
  from which ``conveyor dlq replay`` runs it again once a worker serves the type)
  when no live worker serves it.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from celery.worker.consumer import Consumer as CeleryConsumer
from pydantic import BaseModel

from conveyor import keys
from conveyor.enqueue import hand_back
from conveyor.errors import UnknownJobType
from conveyor.events import TERMINAL
from conveyor.jobs import JobDefinition
from conveyor.submission import Submission
from conveyor.worker.heartbeats import serving_workers

if TYPE_CHECKING:
    from celery import Celery

    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.worker")

#: The first hand-back waits this long; each next one twice as long, up to MAX_PAUSE_S.
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 5.0

#: Where the consumer finds the hand-back logic of its Celery app (one per worker).
_HANDLERS: weakref.WeakKeyDictionary[Celery, UnknownTypes] = weakref.WeakKeyDictionary()

#: The field of a job's live state that counts its hand-backs.
HOPS_FIELD = "handbacks"


@dataclass(frozen=True)
class Delivery:
    """What a job's message says about it (Celery's task protocol 2)."""

    job_id: str
    job_type: str
    payload: Any
    meta: dict[str, Any]
    queue: str
    priority: int | None

    @classmethod
    def from_message(cls, message: Any) -> Delivery:
        """Read one kombu message (headers ``id``/``task``, body ``[args, kwargs, embed]``)."""
        headers = message.headers or {}
        args, kwargs, _ = message.decode()
        meta = dict((kwargs or {}).get("meta") or {})
        delivery = message.delivery_info or {}
        queue = str(meta.get("queue") or delivery.get("routing_key") or "")
        meta.setdefault("queue", queue)
        return cls(
            job_id=str(headers["id"]),
            job_type=str(headers["task"]),
            payload=args[0] if args else None,
            meta=meta,
            queue=queue,
            priority=meta.get("priority", (message.properties or {}).get("priority")),
        )


def pause_s(hops: int) -> float:
    """How long a job handed back for the ``hops``-th time waits before it is published."""
    return float(min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** max(0, hops - 1)))


class UnknownTypes:
    """Decides what a worker does with a job whose type its application does not declare."""

    def __init__(self, app: Conveyor, worker: str) -> None:
        self.app = app
        self.worker = worker

    def handle(self, delivery: Delivery) -> str:
        """Hand the job back or fail it; return ``"handed back"``, ``"failed"`` or ``"done"``."""
        client = self.app.redis
        status = cast(bytes | None, client.hget(keys.job(delivery.job_id), "status"))
        if status is not None and status.decode() in TERMINAL:
            return "done"  # cancelled meanwhile (or already failed): nothing to run
        serving = [
            name
            for name in serving_workers(
                client, self.app.settings.heartbeat_s, delivery.job_type, delivery.queue
            )
            if name != self.worker
        ]
        limit = self.app.settings.unknown_type_max_hops
        if serving:
            pipe = client.pipeline(transaction=True)
            pipe.hincrby(keys.job(delivery.job_id), HOPS_FIELD, 1)
            pipe.expire(keys.job(delivery.job_id), self.app.settings.result_expires_s)
            hops = int(pipe.execute()[0])
            if hops <= limit:
                self._hand_back(delivery, hops)
                log.info(
                    "job %s (%s) is not declared here; handed back for %s (hop %d)",
                    delivery.job_id,
                    delivery.job_type,
                    ", ".join(serving),
                    hops,
                )
                return "handed back"
            reason = (
                f"{delivery.job_type} was handed back {limit} times on queue "
                f"{delivery.queue} without a worker that serves it taking it "
                f"(CONVEYOR_UNKNOWN_TYPE_MAX_HOPS={limit})"
            )
        else:
            reason = (
                f"no live worker serves {delivery.job_type} on queue {delivery.queue}; "
                f"start one with CONVEYOR_APP=<your module>:app conveyor worker, then "
                f"`conveyor dlq replay {delivery.job_id}`"
            )
        self._fail(delivery, reason)
        return "failed"

    def _hand_back(self, delivery: Delivery, hops: int) -> None:
        submission = Submission.of_delivery(
            delivery.job_id,
            delivery.job_type,
            delivery.payload,
            delivery.meta,
            queue=delivery.queue,
            priority=delivery.priority,
            due_at=time.time() + pause_s(hops),
            # Published again without a new `queued` event: the job never left that state.
            handed_back=True,
        )
        hand_back(self.app, submission)

    def _fail(self, delivery: Delivery, reason: str) -> None:
        from conveyor.worker.executor import Execution

        known = list(self.app.definitions)
        error = UnknownJobType(delivery.job_type, known, reason=reason)
        definition = stand_in_definition(delivery.job_type)
        execution = Execution(
            self.app, definition, delivery.job_id, delivery.payload, delivery.meta, self.worker
        )
        execution._handle_error(error, time.time())


def stand_in_definition(name: str) -> JobDefinition:
    """A definition for job type ``name`` where the application declares none, so that
    its failure can take the executor's path (no retries, nothing to run)."""
    return JobDefinition(name=name, func=_not_declared, model=BaseModel, retries=0)


def _not_declared(*_: Any) -> None:
    raise AssertionError("never called: the job type is not declared here")


class Consumer(CeleryConsumer):
    """Celery's consumer, except for messages whose task this worker does not declare."""

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        """Hand the job back or fail it (see the module docstring), then acknowledge it."""
        handler = _HANDLERS.get(self.app)
        if handler is None:
            super().on_unknown_task(body, message, exc)
            return
        try:
            delivery = Delivery.from_message(message)
        except Exception:
            # Not a Conveyor job (another producer's task): Celery's own handling.
            super().on_unknown_task(body, message, exc)
            return
        try:
            handler.handle(delivery)
        except Exception:
            log.exception("job %s: could not hand it back; it stays queued", delivery.job_id)
            message.reject(requeue=True)
            return
        message.ack()


def install(celery_app: Celery, app: Conveyor, worker: str) -> None:
    """Make ``celery_app``'s worker hand back (or fail) jobs of types it does not declare."""
    _HANDLERS[celery_app] = UnknownTypes(app, worker)
    celery_app.conf.worker_consumer = f"{__name__}:Consumer"
