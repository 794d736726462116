"""The thin Celery task adapter: one Celery task per job type.

The Celery task's name is the job type's name and its id is the job's id, so
Flower and ``celery inspect`` show the same names and ids as Conveyor. The
message body is ``args=[payload]``, ``kwargs={"meta": {...}}`` (attempt, queue,
priority, creation time) — plain JSON a non-Conveyor producer can send too.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject, TimeLimitExceeded

from conveyor.broker.outage import unavailable
from conveyor.engine.start import HEADER as START_HEADER
from conveyor.engine.start import Started
from conveyor.jobs import JobDefinition
from conveyor.worker.executor import Execution, record_hard_time_limit

if TYPE_CHECKING:
    from conveyor.app import Conveyor


class JobTask(Task):  # type: ignore[type-arg]
    """The base of every job type's Celery task.

    ``conveyor_app`` and ``conveyor_definition`` are set per task by :func:`register`.
    """

    conveyor_app: Conveyor
    conveyor_definition: JobDefinition
    #: Conveyor sends each job's Celery task events itself, in the same step as its
    #: state change. Celery's own (switched on by Flower's ``enable_events``) would
    #: report every job as succeeded once its function returned, failed jobs too,
    #: and duplicate the rest.
    send_events = False
    #: Stock Celery messages (and ETAs) are adopted as Conveyor jobs before they run.
    Strategy = "conveyor.compat.strategy:job_strategy"

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Record a hard time limit as a failed attempt.

        The job function never raises into Celery (the executor records its
        failures), so the one failure that arrives here is the pool process
        killed at its hard limit: Celery calls this in the worker's main process
        (``Request.on_timeout``), after which it acknowledges the message.
        """
        if not isinstance(exc, TimeLimitExceeded):
            return
        payload = args[0] if args else None
        meta = dict((kwargs or {}).get("meta") or {})
        meta.setdefault("queue", self.conveyor_app.queue_for(self.conveyor_definition))
        record_hard_time_limit(
            self.conveyor_app, self.conveyor_definition, task_id, payload, meta, exc
        )


def register(celery_app: Celery, app: Conveyor, definition: JobDefinition) -> None:
    """Register ``definition`` as a Celery task of ``celery_app``."""

    def run(task: Task[Any, Any], payload: Any = None, meta: dict[str, Any] | None = None) -> None:
        request = task.request
        delivery = request.delivery_info or {}
        info = dict(meta or {})
        info.setdefault("queue", delivery.get("routing_key"))
        info.setdefault("priority", delivery.get("priority"))
        worker = request.hostname or socket.gethostname()
        try:
            started = Started.of_header(getattr(request, START_HEADER, None))
            Execution(app, definition, str(request.id), payload, info, worker).run(started)
        except redis.RedisError as exc:
            if not unavailable(exc):
                raise
            # The broker went away under the job (its outcome could not be recorded):
            # hand the message back rather than let Celery acknowledge it as done.
            raise Reject(f"broker unavailable: {exc}", requeue=True) from None

    run.__name__ = run.__qualname__ = definition.name.replace(".", "_")
    options: dict[str, Any] = {
        "name": definition.name,
        "bind": True,
        "typing": False,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "ignore_result": True,
        # Not shared: Celery would register a shared task on every Celery app made
        # later in the process, each then running the first Conveyor app's closure.
        "shared": False,
        "base": JobTask,
        "conveyor_app": app,
        "conveyor_definition": definition,
    }
    if definition.time_limit is not None:
        options["time_limit"] = definition.time_limit
    if definition.soft_time_limit is not None:
        options["soft_time_limit"] = definition.soft_time_limit
    celery_app.task(**options)(run)
