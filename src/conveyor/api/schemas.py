"""Wire schemas: what the API accepts and answers (apart from the store's SQL models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints

from conveyor.state import JobState

Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/=-]+$")
]


class JobSubmission(BaseModel):
    """``POST /jobs``: one job to enqueue."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=200, examples=["diag.sleep"])
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"seconds": 1, "steps": 4}])
    # Strict: a JSON boolean is not a number (``true`` would pass as 1).
    priority: StrictInt | None = Field(None, ge=0, le=10, description="0–10, 10 the most urgent")
    queue: str | None = Field(None, min_length=1, max_length=100)
    delay: StrictFloat | None = Field(None, ge=0, le=365 * 86400, description="seconds")
    eta: datetime | None = None
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/=+-]+$"
    )
    tags: list[Tag] = Field(default_factory=list, max_length=20)


class Job(JobState):
    """A job as the API answers it; ``deduplicated`` on a repeated idempotency key."""

    deduplicated: bool = False


class JobPage(BaseModel):
    """One page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[Job]
    next_cursor: str | None = None


class JobResult(BaseModel):
    """A succeeded job's return value."""

    id: str
    status: str
    result: Any = None


class CancelOutcome(BaseModel):
    """What ``POST /jobs/{id}/cancel`` did."""

    cancelled: bool
    job: Job


class BatchSubmission(BaseModel):
    """``POST /batches``: jobs validated all-or-nothing, then enqueued."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSubmission] = Field(min_length=1, max_length=1000)


class Batch(BaseModel):
    """A batch's progress, counted from its jobs' live states."""

    id: str
    tenant: str | None = None
    created_at: float
    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    percent: float = Field(description="finished jobs (any outcome) as a share of total, 0–100")
    job_ids: list[str] = []


class JobType(BaseModel):
    """A registered job type."""

    name: str
    queue: str
    priority: int | None
    retries: int
    backoff: float | list[float] | None
    time_limit_s: float | None
    soft_time_limit_s: float | None
    rate_limit: str | None
    gpu: str
    unique: bool | list[str]
    input_schema: dict[str, Any]


class QueueStatus(BaseModel):
    """One queue: waiting messages per priority level, age of the oldest, consumers."""

    name: str
    priority: int
    length: int
    levels: dict[str, int]
    oldest_age_s: float | None
    consumers: int
    workers: int


class QueuesOverview(BaseModel):
    """Every queue plus the jobs waiting outside them."""

    queues: list[QueueStatus]
    total: int
    delayed: int
    reserved: int


class QueueBacklog(BaseModel):
    """What an autoscaler scales on: one queue's (or a sum of queues') backlog."""

    queue: str
    backlog: int
    waiting: int
    reserved: int
    running: int
    due_soon: int


class BacklogOverview(BaseModel):
    """The summed backlog of the queues asked for, and each queue's."""

    backlog: int
    waiting: int
    reserved: int
    running: int
    due_soon: int
    queues: list[QueueBacklog]


class Worker(BaseModel):
    """A live worker."""

    name: str
    hostname: str
    profile: str
    queues: list[str]
    concurrency: int
    pid: int
    active: int | None
    processed: int | None
    started_at: float
    last_heartbeat: float


class Check(BaseModel):
    """One component of a health report."""

    status: Literal["ok", "degraded", "down"]
    detail: str | None = None
    value: float | None = None


class Health(BaseModel):
    """``/monitoring/tasks/health``: the worst component decides ``status``."""

    status: Literal["ok", "degraded", "down"]
    checks: dict[str, Check]
    workers: int
    backlog: int
    recorder_lag: int | None
    checked_at: float


class Ready(BaseModel):
    """``/readyz``."""

    ready: bool
    broker: str | None
    store: str | None


class FieldError(BaseModel):
    """One problem with one field of a request."""

    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer: ``detail``, plus field ``errors`` (422) or ``known_types``."""

    detail: str
    errors: list[FieldError] | None = None
    known_types: list[str] | None = None
