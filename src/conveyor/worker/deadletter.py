"""The ``dead-letter`` queue: where a failed job is sent, and the task that consumes it.

When a job fails for good (a permanent error, or its retries are exhausted —
including at its hard time limit), the worker that ran it writes the ``failed``
event (from which the recorder files the dead letter in the job store) and then
publishes one small ``conveyor.dead_letter`` message on the ``dead-letter``
queue. The monitoring worker consumes it and sends the webhook alert when the
job's queue calls for one (:mod:`conveyor.services.alerts`), retrying with backoff. The
job's own worker only publishes, so a slow webhook never holds it up.

The message is JSON: ``kwargs={"dead_letter": {job_id, type, queue, priority,
error_type, error_message, attempt, deliveries, worker, failed_at}}`` — no
payload, no traceback (those are in the job store).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import Celery, Task

from conveyor.services.alerts import (
    AlertDeliveryError,
    alert_body,
    post_json,
    retry_delay,
    should_alert,
)
from conveyor.settings import mask_url
from conveyor.topology import DEAD_LETTER

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.deadletter")

#: The Celery task name of dead-letter messages.
DEAD_LETTER_TASK = "conveyor.dead_letter"

#: Fields a dead-letter message carries.
FIELDS = (
    "job_id",
    "type",
    "queue",
    "priority",
    "error_type",
    "error_message",
    "attempt",
    "deliveries",
    "worker",
    "failed_at",
)


def send_dead_letter(app: Conveyor, dead_letter: dict[str, Any]) -> bool:
    """Publish one dead-letter message; False (and a logged error) if the broker refused.

    Never raises: the ``failed`` event is already written, and the job's worker
    must go on with its next job whatever happens here.
    """
    body = {name: dead_letter.get(name) for name in FIELDS}
    try:
        app.celery.send_task(
            DEAD_LETTER_TASK,
            kwargs={"dead_letter": body},
            task_id=f"dead-letter-{body['job_id']}",
            queue=DEAD_LETTER,
            routing_key=DEAD_LETTER,
            priority=0,
        )
    except Exception:
        log.exception("job %s: could not publish its dead-letter message", body["job_id"])
        return False
    return True


def register_dead_letter_task(celery_app: Celery, app: Conveyor) -> None:
    """Register the ``conveyor.dead_letter`` task on ``celery_app``."""
    unknown = [q for q in app.settings.alert_queues if q not in app.topology.queues]
    if unknown:
        log.warning(
            "CONVEYOR_ALERT_QUEUES names unknown queue(s) %s; known queues: %s",
            ", ".join(unknown),
            ", ".join(app.topology.queue_names()),
        )

    def dead_letter(task: Task[Any, Any], dead_letter: dict[str, Any]) -> str:
        settings = app.settings
        job_id = dead_letter.get("job_id")
        queue = dead_letter.get("queue")
        log.warning(
            "dead letter: %s job %s on queue %s (%s: %s)",
            dead_letter.get("type"),
            job_id,
            queue,
            dead_letter.get("error_type"),
            dead_letter.get("error_message"),
        )
        if not should_alert(settings, queue):
            return "filed"
        url = settings.alert_webhook_url
        if url is None:
            log.warning(
                "job %s died on alerting queue %s but CONVEYOR_ALERT_WEBHOOK_URL is not set",
                job_id,
                queue,
            )
            return "no-webhook"
        tries = int(task.request.retries or 0)
        try:
            post_json(url, alert_body(dead_letter), timeout_s=settings.alert_timeout_s)
        except AlertDeliveryError as exc:
            if tries >= settings.alert_retries:
                log.error("job %s: alert not delivered after %d tries: %s", job_id, tries + 1, exc)
                return "undelivered"
            delay = retry_delay(tries)
            log.warning("job %s: alert failed (%s); retry in %.0fs", job_id, exc, delay)
            raise task.retry(countdown=delay, max_retries=settings.alert_retries) from None
        log.info("job %s: alert delivered to %s", job_id, mask_url(url))
        return "alerted"

    dead_letter.__name__ = dead_letter.__qualname__ = "dead_letter"
    celery_app.task(
        name=DEAD_LETTER_TASK,
        bind=True,
        typing=False,
        acks_late=True,
        ignore_result=True,
        shared=False,
    )(dead_letter)
