"""A job's state as users read it: :class:`JobState`."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from pydantic import BaseModel

Status = Literal["queued", "scheduled", "started", "retrying", "succeeded", "failed", "cancelled"]
#: Every job status, in lifecycle order (what ``conveyor jobs --status`` and the API accept).
STATUSES: tuple[str, ...] = get_args(Status)


class JobError(BaseModel):
    """Why a job (or its last attempt) failed."""

    type: str
    message: str
    traceback: str | None = None


class JobState(BaseModel):
    """A snapshot of one job: where it is, how far it got, and how it ended."""

    id: str
    type: str
    queue: str
    priority: int | None = None
    status: Status
    progress: float = 0.0
    stage: str | None = None
    message: str | None = None
    attempt: int = 0
    deliveries: int = 0
    worker: str | None = None
    payload: dict[str, Any] | None = None
    result: Any = None
    error: JobError | None = None
    created_at: float | None = None
    due_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    tenant: str | None = None
    batch_id: str | None = None
    replay_of: str | None = None
    tags: list[str] = []
    #: Where the last delivery ran: "cuda" or "cpu".
    device: str | None = None

    @property
    def done(self) -> bool:
        """True once the job is succeeded, failed or cancelled."""
        return self.status in ("succeeded", "failed", "cancelled")

    @property
    def wait_s(self) -> float | None:
        """Seconds from submission (or due time) to the start of the last delivery."""
        begin = self.due_at or self.created_at
        if begin is None or self.started_at is None:
            return None
        return max(0.0, self.started_at - begin)

    @property
    def run_s(self) -> float | None:
        """Seconds from the start of the last delivery to the end."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[bytes, bytes]) -> JobState:
        """Build a snapshot from the live-state hash as Redis returns it."""
        data = {k.decode(): v.decode() for k, v in raw.items()}
        error = None
        if data.get("error_type"):
            error = JobError(
                type=data["error_type"],
                message=data.get("error_message", ""),
                traceback=data.get("traceback"),
            )
        return cls(
            id=job_id,
            type=data.get("type", "?"),
            queue=data.get("queue", "?"),
            priority=_int(data.get("priority")),
            status=data.get("status", "queued"),
            progress=float(data.get("progress") or 0.0),
            stage=data.get("stage") or None,
            message=data.get("message") or None,
            attempt=int(data.get("attempt") or 0),
            deliveries=int(data.get("deliveries") or 0),
            worker=data.get("worker") or None,
            payload=_json(data.get("payload")),
            result=_result(data.get("result")),
            error=error,
            created_at=_float(data.get("created_at")),
            due_at=_float(data.get("due_at")),
            started_at=_float(data.get("started_at")),
            finished_at=_float(data.get("finished_at")),
            tenant=data.get("tenant") or None,
            batch_id=data.get("batch_id") or None,
            replay_of=data.get("replay_of") or None,
            tags=_json(data.get("tags")) or [],
            device=data.get("device") or None,
        )


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _json(value: str | None) -> Any:
    return json.loads(value) if value not in (None, "") else None


def _result(value: str | None) -> Any:
    """A result from the live state: JSON text (a result that is a string too).

    States written before results were always JSON-encoded hold a string result as
    its bare text: that text is returned as it is.
    """
    if value in (None, ""):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value
