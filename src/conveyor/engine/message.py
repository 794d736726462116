"""A job's broker message, built without Celery's producer.

``send_task`` costs a submit two round trips (the message's ``LPUSH``, then the
``queued`` event's script) and half of its CPU time (kombu's producer, binding
and retry wrappers). On Conveyor's Redis transport the message is a JSON string
on one list, so the submitting client builds it here — headers and body from
Celery's own ``as_task_v2``, the envelope as kombu's Redis channel writes it —
and the event script pushes it in the same atomic step as the event.
``tests/unit/test_message.py`` pins it to what ``send_task`` produces.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from celery import Celery
from kombu.utils.json import JSONEncoder

from conveyor import keys
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY

#: kombu's ``dumps`` (its encoder, default options), without a new encoder per call.
dumps = JSONEncoder().encode


def redis_message(
    celery: Celery,
    *,
    task_id: str,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str,
    priority: int | None,
    argsrepr: str,
    kwargsrepr: str,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
) -> tuple[str, str]:
    """``(list, JSON)``: the broker list of ``queue`` at ``priority`` and the message for it."""
    # Celery's stubs are narrower than the method (float limits, a list of args,
    # ignore_result None as send_task passes it).
    amqp: Any = celery.amqp
    headers, properties, body, _ = amqp.as_task_v2(
        task_id,
        name,
        args,
        kwargs,
        reply_to=celery.thread_oid,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        ignore_result=None,
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
    )
    level = max(MIN_PRIORITY, min(MAX_PRIORITY, int(priority or 0)))
    envelope = {
        "body": base64.b64encode(dumps(body).encode("utf-8")).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": level,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return keys.queue_list(queue, level), dumps(envelope)


def message_body(envelope: dict[str, Any]) -> Any:
    """The decoded body of a message read from a broker list (base64 JSON, as kombu
    writes it); raises ``ValueError``/``TypeError`` for one that is not."""
    return json.loads(base64.b64decode(envelope.get("body", "")))
