"""One attempt of a job, as it is enqueued: the typed :class:`Submission`.

Every path that puts a job on a queue or on the delayed set builds one — a
submit, a retry or deferral, the delayed-job mover, a GPU or unknown-type
hand-back, a dead-letter replay, a batch — and hands it to
:mod:`conveyor.enqueue`. On the delayed set it is stored as JSON
(:meth:`Submission.to_json`), in the same form earlier versions wrote, so entries
survive a rolling upgrade in either direction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

#: Names of the time limits a job may override for itself (absent: its type's apply).
LIMITS = ("time_limit", "soft_time_limit")


@dataclass(frozen=True, slots=True)
class Submission:
    """Everything needed to publish (or publish again) one attempt of a job."""

    id: str
    type: str
    payload: Any
    queue: str
    priority: int | None
    attempt: int = 0
    created_at: float | None = None
    #: When it is due (None or past: now).
    due_at: float | None = None
    #: This job's own limits, kept across its retries and hand-backs.
    time_limit: float | None = None
    soft_time_limit: float | None = None
    #: Where the attempt runs when forced ("cpu" after a GPU out-of-memory retry).
    device: str | None = None
    #: What is recorded with the job: tenant, batch_id, replay_of, tags.
    labels: Mapping[str, Any] = field(default_factory=dict)
    #: Handed back for another worker: published again without a new ``queued`` event.
    handed_back: bool = False

    def but(self, **changes: Any) -> Submission:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def is_due(self, now: float) -> bool:
        """Whether it goes to its queue now rather than on the delayed set."""
        return self.due_at is None or self.due_at <= now

    def limits(self) -> dict[str, float]:
        """The time limits this job overrides (empty: its type's apply)."""
        limits = {}
        if self.time_limit is not None:
            limits["time_limit"] = float(self.time_limit)
        if self.soft_time_limit is not None:
            limits["soft_time_limit"] = float(self.soft_time_limit)
        return limits

    def meta(self) -> dict[str, Any]:
        """The ``meta`` keyword argument the job's message carries."""
        meta: dict[str, Any] = {
            "attempt": self.attempt,
            "queue": self.queue,
            "priority": self.priority,
            "created_at": self.created_at,
            **self.limits(),
        }
        if self.device:
            meta["device"] = self.device
        return meta

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form (what :meth:`to_json` writes)."""
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "payload": self.payload,
            **self.meta(),
            "due_at": self.due_at,
        }
        if self.labels:
            data["labels"] = dict(self.labels)
        if self.handed_back:
            data["handed_back"] = True
        return data

    def view(self) -> Mapping[str, Any]:
        """A read-only mapping of :meth:`as_dict` (what ``before_enqueue`` hooks receive)."""
        return MappingProxyType({**self.as_dict(), "labels": dict(self.labels)})

    def to_json(self) -> str:
        """Compact JSON, as stored on the delayed set."""
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Submission:
        """Read an entry of the delayed set (this form, or the plain dict earlier versions
        wrote); ``ValueError`` when it is not a submission."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("a submission is a JSON object")
        return cls.from_dict(data)

    @classmethod
    def of_delivery(
        cls, job_id: str, type: str, payload: Any, meta: Mapping[str, Any], **changes: Any
    ) -> Submission:
        """The attempt a delivered message carries (its ``meta``: the inverse of
        :meth:`meta`), with ``changes``: how a worker publishes a job again."""
        values: dict[str, Any] = {
            "id": job_id,
            "type": type,
            "payload": payload,
            "queue": str(meta.get("queue") or ""),
            "priority": meta.get("priority"),
            "attempt": int(meta.get("attempt") or 0),
            "created_at": meta.get("created_at"),
            "time_limit": meta.get("time_limit") or None,
            "soft_time_limit": meta.get("soft_time_limit") or None,
            "device": meta.get("device") or None,
        }
        values.update(changes)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Submission:
        """A submission from its dict form; unknown keys are ignored, missing ones defaulted."""
        missing = [name for name in ("id", "type", "queue") if not data.get(name)]
        if missing:
            raise ValueError(f"not a submission: no {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        values.setdefault("payload", None)
        values.setdefault("priority", None)
        values["attempt"] = int(values.get("attempt") or 0)
        values["labels"] = dict(values.get("labels") or {})
        values["handed_back"] = bool(values.get("handed_back"))
        return cls(**values)
