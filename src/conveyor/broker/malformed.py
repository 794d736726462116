"""Malformed messages on a queue: told apart from kombu messages, rejected, counted.

Anything can be pushed onto a queue's list: a producer's bug, a JSON list, bytes
that are no JSON at all. kombu would fail to decode it inside the worker's
consumer loop, and the exception would stop the worker's main process; a few
such messages would stop every worker of a queue. The transport checks each
message it takes before it hands it to kombu: one that is not a kombu message is
dropped from the queue, logged, counted per queue (``conveyor:malformed:counts``,
served as ``conveyor_malformed_messages_total`` on ``/metrics``) and kept, cut to
:data:`KEPT_BYTES`, in a short list (``conveyor:malformed``) for inspection.

A message with a kombu envelope that is not a Celery task (missing headers, an
unknown task name) is Celery's to refuse: it logs and acknowledges it, and
:func:`count_refused_messages` counts it the same way.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, cast

import redis

from conveyor import keys

log = logging.getLogger("conveyor.broker")

#: How many rejected messages ``conveyor:malformed`` keeps.
KEPT = 100
#: How much of each rejected message is kept.
KEPT_BYTES = 4096


def envelope_error(raw: bytes | str) -> str | None:
    """Why ``raw`` is not a kombu message on a Redis list, or None when it is one.

    Checks what kombu reads before it hands the message to Celery (the same
    checks as the transport's fetch script).
    """
    try:
        payload = json.loads(raw)
    except ValueError:
        return "not JSON"
    if not isinstance(payload, dict):
        return f"a JSON {type(payload).__name__}, not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no 'properties' object"
    if not isinstance(properties.get("delivery_tag"), str):
        return "no delivery tag"
    if not isinstance(properties.get("delivery_info", {}), dict):
        return "'delivery_info' is not an object"
    body = payload.get("body", "")
    if not isinstance(body, str):
        return "'body' is not a string"
    if body and properties.get("body_encoding") == "base64":
        try:
            base64.b64decode(body)
        except ValueError:  # binascii.Error
            return "'body' is not base64"
    return None


def reject(client: redis.Redis, queue: str, raw: bytes, reason: str) -> None:
    """Log, count and keep a malformed message taken off ``queue`` (best effort)."""
    log.error("rejected a malformed message on queue %s (%s): %r", queue, reason, raw[:200])
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hincrby(keys.MALFORMED_COUNTS, queue, 1)
        pipe.lpush(keys.MALFORMED, raw[:KEPT_BYTES])
        pipe.ltrim(keys.MALFORMED, 0, KEPT - 1)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("malformed message on %s not counted: %s", queue, exc)


def count_refused_messages(client: redis.Redis) -> None:
    """Count the messages Celery refuses in this worker (not a task; an unknown task)."""
    from celery import signals

    def refused(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
        info = getattr(message, "delivery_info", None) or {}
        queue = str(info.get("routing_key") or "?")
        body = getattr(message, "body", b"")
        raw = body if isinstance(body, bytes) else str(body).encode()
        reject(client, queue, raw, f"refused by Celery: {exc or 'not a task'}")

    signals.task_rejected.connect(refused, weak=False)
    signals.task_unknown.connect(refused, weak=False)


def counts(client: redis.Redis) -> dict[str, int]:
    """How many malformed messages were rejected, by queue."""
    raw = cast(dict[bytes, bytes], client.hgetall(keys.MALFORMED_COUNTS))
    return {k.decode(): int(v) for k, v in raw.items()}


def latest(client: redis.Redis, limit: int = 10) -> list[Any]:
    """The latest rejected messages (raw bytes, newest first)."""
    return cast(list[Any], client.lrange(keys.MALFORMED, 0, limit - 1))
