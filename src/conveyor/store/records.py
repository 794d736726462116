"""What the job store's queries return: plain pydantic records, apart from the ORM rows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.state import JobError, JobState


class JobRecord(BaseModel):
    """One job as the store holds it (every column but the recorder's bookkeeping)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    queue: str
    priority: int | None = None
    status: str
    progress: float | None = None
    stage: str | None = None
    message: str | None = None
    attempt: int = 0
    deliveries: int = 0
    worker: str | None = None
    payload: Any = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    created_at: float
    due_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float
    idempotency_key: str | None = None
    tenant: str | None = None
    batch_id: str | None = None
    replay_of: str | None = None
    tags: list[str] | None = None

    def to_state(self) -> JobState:
        """The record as a :class:`JobState`, the shape live state is read in."""
        error = None
        if self.error_type:
            error = JobError(
                type=self.error_type, message=self.error_message or "", traceback=self.traceback
            )
        return JobState(
            id=self.id,
            type=self.type,
            queue=self.queue,
            priority=self.priority,
            status=self.status,
            progress=self.progress or 0.0,
            stage=self.stage,
            message=self.message,
            attempt=self.attempt,
            deliveries=self.deliveries,
            worker=self.worker,
            payload=self.payload if isinstance(self.payload, dict) else None,
            result=self.result,
            error=error,
            created_at=self.created_at,
            due_at=self.due_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            tenant=self.tenant,
            batch_id=self.batch_id,
            replay_of=self.replay_of,
            tags=self.tags or [],
        )


class DeadLetterRecord(BaseModel):
    """A failed job's dead letter."""

    model_config = ConfigDict(from_attributes=True)

    job_id: str
    type: str
    queue: str
    priority: int | None = None
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    attempt: int = 0
    deliveries: int = 0
    worker: str | None = None
    tenant: str | None = None
    failed_at: float
    expires_at: float
    replayed_as: str | None = None
    replayed_at: float | None = None


class BatchRecord(BaseModel):
    """A batch of jobs and how many of them are in each status."""

    id: str
    tenant: str | None = None
    created_at: float
    total: int | None = None
    counts: dict[str, int] = {}


class RetentionCounts(BaseModel):
    """How many rows one retention pass deleted, per table."""

    jobs: int = 0
    dead_letters: int = 0
    batches: int = 0
