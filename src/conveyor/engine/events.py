"""Celery-format task events, so an unmodified Flower (or ``celery events``) sees every job.

Celery's worker publishes its task events one round trip at a time from the
worker's main process, which halves a prefork worker's throughput on Redis.
Conveyor turns those off and instead folds the same events — ``task-sent``,
``task-received``, ``task-started``, ``task-succeeded``, ``task-failed``,
``task-retried``, ``task-revoked`` — into the Lua script that already records
each state change: no extra round trip, and the main process stays free.
Worker heartbeats (``worker-online``, ``worker-heartbeat``) are still Celery's own.

The message is what kombu's Redis transport publishes for the ``celeryev``
fanout exchange: a JSON envelope whose base64 body is the event, on the pub/sub
channel ``/{db}.celeryev/{routing_key}``.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from kombu.utils.encoding import safe_repr

EXCHANGE = "celeryev"

# One encoder each, not one per ``json.dumps`` call with options.
_body_json = json.JSONEncoder(default=str).encode
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def channel_prefix(broker_url: str) -> str:
    """``/{db}.`` for the broker URL's database, as kombu's fanout prefix."""
    path = urlsplit(broker_url).path.strip("/")
    db = path if path.isdigit() else "0"
    return f"/{db}."


def _utcoffset() -> int:
    # Celery's own definition: hours west of UTC, as an int.
    return time.altzone // 3600 if time.daylight else time.timezone // 3600


class CeleryEvents:
    """Builds Celery task events as (channel, message) pairs for one broker."""

    def __init__(self, broker_url: str, hostname: str | None = None) -> None:
        self.prefix = channel_prefix(broker_url)
        self.hostname = hostname or ""
        self._clock = 0

    def event(
        self, kind: str, fields: dict[str, Any], hostname: str | None = None
    ) -> tuple[str, str]:
        """One event of type ``kind`` (``task-started``…) ready to PUBLISH."""
        host = hostname or self.hostname
        self._clock += 1
        body = {
            "hostname": host,
            "utcoffset": _utcoffset(),
            "pid": os.getpid(),
            "clock": self._clock,
            "timestamp": time.time(),
            "type": kind,
            **fields,
        }
        routing_key = kind.replace("-", ".")
        envelope = {
            "body": base64.b64encode(_body_json(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": host},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": EXCHANGE, "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        channel = f"{self.prefix}{EXCHANGE}/{routing_key}"
        return channel, _compact_json(envelope)


def task_fields(job_id: str, name: str, payload: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The fields Celery puts in ``task-sent`` and ``task-received`` events."""
    return {
        "uuid": job_id,
        "name": name,
        "args": safe_repr([payload]),
        "kwargs": safe_repr({"meta": meta}),
        "retries": meta.get("attempt", 0),
        "eta": None,
        "expires": None,
        "root_id": job_id,
        "parent_id": None,
    }
