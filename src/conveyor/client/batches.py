"""Batches: many jobs validated all-or-nothing, submitted together, counted as one.

A batch is a hash ``conveyor:batch:{id}`` (tenant, total, created_at) and the
list of its job ids; each job carries ``batch_id`` (live state, events, store).
Counts are read from the jobs' live states, so they are right at once.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from conveyor import keys
from conveyor.app import Conveyor
from conveyor.client.job import Job
from conveyor.errors import ConveyorError, NotFound, PayloadInvalid
from conveyor.submission import Submission
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY


@dataclass
class BatchCounts:
    """How far a batch got."""

    id: str
    tenant: str | None
    created_at: float
    total: int
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    job_ids: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        """Finished jobs (any outcome) as a share of the total, 0–100."""
        done = self.succeeded + self.failed + self.cancelled
        return round(100.0 * done / self.total, 2) if self.total else 100.0


def validate_all(app: Conveyor, submissions: list[dict[str, Any]]) -> None:
    """Check every submission; one :class:`PayloadInvalid` lists all problems by index."""
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(submissions):
        where = f"jobs.{index}"
        try:
            definition = app.definition(item["type"])
        except ConveyorError as exc:
            problems.append({"field": f"{where}.type", "message": str(exc), "type": "unknown_type"})
            continue
        try:
            definition.validate(item.get("payload"))
        except PayloadInvalid as exc:
            for error in exc.errors:
                name = f"{where}.payload.{error['field']}".rstrip(".")
                problems.append(dict(error, field=name))
        queue = item.get("queue")
        if queue is not None and queue not in app.topology.queues:
            problems.append(
                {"field": f"{where}.queue", "message": f"unknown queue {queue!r}", "type": "queue"}
            )
        priority = item.get("priority")
        if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            problems.append(
                {"field": f"{where}.priority", "message": "must be 0–10", "type": "priority"}
            )
    if problems:
        raise _BatchInvalid(problems)


class _BatchInvalid(PayloadInvalid):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.job_type = "batch"
        self.errors = errors
        lines = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
        ConveyorError.__init__(self, f"invalid batch: {lines}")


def submit_batch(
    app: Conveyor, submissions: list[dict[str, Any]], *, tenant: str | None
) -> tuple[str, list[Job]]:
    """Validate all, record the batch, then submit each job; returns (batch id, jobs)."""
    validate_all(app, submissions)
    batch_id = str(uuid.uuid4())
    ttl = app.settings.result_expires_s
    pipe = app.redis.pipeline(transaction=True)
    info: dict[FieldT, EncodableT] = {"total": len(submissions), "created_at": time.time()}
    if tenant is not None:
        info["tenant"] = tenant
    pipe.hset(keys.batch(batch_id), mapping=info)
    pipe.expire(keys.batch(batch_id), ttl)
    pipe.execute()
    jobs: list[Job] = []
    try:
        # In order; runs of jobs that claim no key are enqueued pipelined, in one round trip.
        pending: list[Submission] = []
        for item in submissions:
            options = {k: v for k, v in item.items() if k not in ("type", "payload")}
            key = options.pop("idempotency_key", None)
            try:
                submission = app.submission(
                    item["type"], item.get("payload"), tenant=tenant, batch_id=batch_id, **options
                )
            except BaseException:
                # A middleware refused this one: those before it are still submitted.
                jobs += app.enqueue_submissions(pending)
                raise
            if key is None and not app.definition(submission.type).unique:
                pending.append(submission)
                continue
            if pending:
                jobs += app.enqueue_submissions(pending)
                pending = []
            jobs.append(app.enqueue_submission(submission, key))
        if pending:
            jobs += app.enqueue_submissions(pending)
    except BaseException:
        # List what was submitted, without hiding why the rest was not.
        with contextlib.suppress(redis.RedisError):
            _list_jobs(app, batch_id, jobs, ttl)
        raise
    _list_jobs(app, batch_id, jobs, ttl)
    return batch_id, jobs


def _list_jobs(app: Conveyor, batch_id: str, jobs: list[Job], ttl: int) -> None:
    """Append the batch's job ids in one round trip (jobs not listed yet count as queued)."""
    if jobs:
        pipe = app.redis.pipeline(transaction=False)
        pipe.rpush(keys.batch_jobs(batch_id), *(job.id for job in jobs))
        pipe.expire(keys.batch_jobs(batch_id), ttl)
        pipe.execute()


def batch_counts(app: Conveyor, batch_id: str) -> BatchCounts:
    """A batch's counts from its jobs' live states; :class:`NotFound` if unknown."""
    client = app.redis
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.batch(batch_id))
    pipe.lrange(keys.batch_jobs(batch_id), 0, -1)
    raw, ids = pipe.execute()
    if not raw:
        raise NotFound(f"no batch {batch_id}")
    info = {k.decode(): v.decode() for k, v in raw.items()}
    job_ids = [i.decode() for i in ids]
    counts = BatchCounts(
        id=batch_id,
        tenant=info.get("tenant"),
        created_at=float(info.get("created_at", 0)),
        total=int(info.get("total", len(job_ids))),
        job_ids=job_ids,
    )
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), "status")
    for status in pipe.execute() if job_ids else []:
        name = status.decode() if status else "queued"
        if name in ("queued", "scheduled"):
            counts.queued += 1
        elif name in ("started", "retrying"):
            counts.running += 1
        elif name == "succeeded":
            counts.succeeded += 1
        elif name == "failed":
            counts.failed += 1
        elif name == "cancelled":
            counts.cancelled += 1
    # Jobs not yet submitted when the batch was read still count as queued.
    counts.queued += max(0, counts.total - len(job_ids))
    return counts
