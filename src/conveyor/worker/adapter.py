"""The thin Celery task adapter: one Celery task per job type.

The Celery task's name is the job type's name and its id is the job's id, so
Flower and ``celery inspect`` show the same names and ids as Conveyor. The
message body is ``args=[payload]``, ``kwargs={"meta": {...}}`` (attempt, queue,
priority, creation time) — plain JSON a non-Conveyor producer can send too.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from celery import Celery, Task

from conveyor.jobs import JobDefinition
from conveyor.worker.executor import Execution

if TYPE_CHECKING:
    from conveyor.app import Conveyor


def register(celery_app: Celery, app: Conveyor, definition: JobDefinition) -> None:
    """Register ``definition`` as a Celery task of ``celery_app``."""

    def run(task: Task[Any, Any], payload: Any = None, meta: dict[str, Any] | None = None) -> None:
        request = task.request
        delivery = request.delivery_info or {}
        info = dict(meta or {})
        info.setdefault("queue", delivery.get("routing_key"))
        info.setdefault("priority", delivery.get("priority"))
        worker = request.hostname or socket.gethostname()
        Execution(app, definition, str(request.id), payload, info, worker).run()

    run.__name__ = run.__qualname__ = definition.name.replace(".", "_")
    options: dict[str, Any] = {
        "name": definition.name,
        "bind": True,
        "typing": False,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "ignore_result": True,
    }
    if definition.time_limit is not None:
        options["time_limit"] = definition.time_limit
    if definition.soft_time_limit is not None:
        options["soft_time_limit"] = definition.soft_time_limit
    celery_app.task(**options)(run)
