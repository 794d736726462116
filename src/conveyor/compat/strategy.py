"""Where a worker meets stock Celery messages: the job tasks' strategy and the unknown-task hook.

Celery hands every delivered message to its task's *strategy*. Conveyor's
messages (``args=[payload], kwargs={"meta": …}``) go to Celery's default
strategy unchanged; any other message of a job type — sent by stock Celery,
or carrying an ETA that Celery would hold in the worker's memory — is adopted
(:mod:`conveyor.compat.adopt`) and acknowledged. A message whose task name no
job type has is recorded as a failed job with a dead letter
(``task_unknown``), where Celery would only log it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.worker.strategy import default

from conveyor.compat.adopt import StockMessage, adopt

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.compat")

#: How Conveyor's own messages start their ``kwargsrepr`` header (compact JSON of
#: ``{"meta": …}``); Celery's producers write ``saferepr``, which starts ``{'``.
CONVEYOR_KWARGSREPR = '{"meta":'


def is_conveyor_message(headers: dict[str, Any]) -> bool:
    """Whether a message was published by Conveyor itself (and carries no ETA)."""
    repr_ = headers.get("kwargsrepr")
    return (
        isinstance(repr_, str) and repr_.startswith(CONVEYOR_KWARGSREPR) and not headers.get("eta")
    )


def job_strategy(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Any:
    """Celery's default strategy, with stock messages adopted rather than run."""
    inner = default(task, app, consumer, **kwargs)
    conveyor_app: Conveyor = task.conveyor_app
    errors = consumer.connection_errors

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any) -> Any:
        if is_conveyor_message(message.headers or {}):
            return inner(message, body, ack, reject, callbacks, **kw)
        try:
            outcome = adopt(conveyor_app, StockMessage.from_kombu(message))
        except Exception:
            # The broker is unreachable (or the message unreadable): hand it back.
            log.exception("could not adopt Celery message %s", (message.headers or {}).get("id"))
            reject(log, errors, requeue=True)
            return None
        log.debug("Celery message %s adopted: %s", (message.headers or {}).get("id"), outcome)
        ack(log, errors)
        return None

    return handler


def connect_unknown_tasks(app: Conveyor) -> None:
    """Record messages of unknown task names as failed jobs (in this worker process)."""

    def on_unknown(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
        if message is None:
            return
        try:
            # adopt() finds no job type of that name and records the refusal.
            adopt(app, StockMessage.from_kombu(message))
        except Exception:
            log.exception("could not record an unknown task's message")

    signals.task_unknown.connect(on_unknown, weak=False)
