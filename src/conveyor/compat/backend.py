"""A Celery result backend that reads Conveyor's live job state.

A plain Celery client configured with it gets ``AsyncResult(id).status``,
``.info``, ``.ready()``, ``.get()`` and ``GroupResult`` for Conveyor jobs,
whoever submitted them — no Celery result is ever stored: Conveyor's own
state (``conveyor:job:{id}`` on the broker) is the answer::

    Celery(broker="redis://…/0", backend="conveyor+redis://…/0")

(``conveyor+`` names this class through the ``celery.result_backends`` entry
point; ``conveyor.compat.backend:ConveyorBackend+redis://…`` works without it.)

=============================  ==============  ===================================
Conveyor status                Celery state    ``result`` / ``info``
=============================  ==============  ===================================
queued, scheduled, unknown id  PENDING         None
started (and progress)         STARTED         ``{"progress", "stage", "message"}``
retrying                       RETRY           the attempt's error
succeeded                      SUCCESS         the job's result
failed                         FAILURE         the error (type and message)
cancelled                      REVOKED         ``TaskRevokedError``
=============================  ==============  ===================================
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis
from celery import states
from celery.backends.base import BaseBackend

from conveyor import keys
from conveyor.settings import mask_url

_STATES = {
    "queued": states.PENDING,
    "scheduled": states.PENDING,
    "started": states.STARTED,
    "retrying": states.RETRY,
    "succeeded": states.SUCCESS,
    "failed": states.FAILURE,
    "cancelled": states.REVOKED,
}


def _value(raw: str | None) -> Any:
    # The live state keeps strings as they are and everything else as JSON.
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def task_meta(job_id: str, live: dict[str, str]) -> dict[str, Any]:
    """Celery's task meta (``status``, ``result``, ``traceback``…) for one job's live state."""
    status = _STATES.get(live.get("status", ""), states.PENDING)
    result: Any = None
    if status == states.SUCCESS:
        result = _value(live.get("result"))
    elif status == states.STARTED:
        result = {
            "progress": float(live.get("progress") or 0.0),
            "stage": live.get("stage") or None,
            "message": live.get("message") or None,
        }
    elif status in (states.FAILURE, states.RETRY):
        result = {
            "exc_type": live.get("error_type") or "JobFailed",
            "exc_message": [live.get("error_message") or ""],
            "exc_module": None,
        }
    elif status == states.REVOKED:
        result = {
            "exc_type": "TaskRevokedError",
            "exc_message": ["cancelled"],
            "exc_module": "celery.exceptions",
        }
    return {
        "task_id": job_id,
        "status": status,
        "result": result,
        "traceback": live.get("traceback") or None,
        "children": [],
        "date_done": None,
        "name": live.get("type") or None,
    }


class ConveyorBackend(BaseBackend):
    """Reads results from Conveyor's live state; stores nothing (Conveyor's workers do)."""

    persistent = False
    supports_native_join = False

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.url = url or app.conf.broker_url
        self.client = redis.Redis.from_url(self.url)

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        raw = cast(dict[bytes, bytes], self.client.hgetall(keys.job(str(task_id))))
        live = {k.decode(): v.decode() for k, v in raw.items()}
        return task_meta(str(task_id), live)

    def _store_result(
        self, task_id: str, result: Any, state: str, *args: Any, **kwargs: Any
    ) -> Any:
        # Conveyor's workers record every state change themselves.
        return result

    def _forget(self, task_id: str) -> None:
        return None

    def as_uri(self, include_password: bool = False) -> str:
        """The backend's URL, password masked unless asked for."""
        return f"conveyor+{self.url if include_password else mask_url(self.url)}"
