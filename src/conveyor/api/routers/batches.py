"""``/api/v1/batches``: submit many jobs at once, follow them as one."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path

from conveyor.api.deps import Context, Reader, Submitter
from conveyor.api.routers.jobs import UUID_PATTERN
from conveyor.api.schemas import Batch, BatchSubmission
from conveyor.api.service import scoped_idempotency_key
from conveyor.api.submitpolicy import check_submission
from conveyor.client import batches
from conveyor.errors import NotFound

router = APIRouter(prefix="/batches", tags=["batches"])

BatchId = Annotated[str, Path(pattern=UUID_PATTERN)]


def _out(counts: batches.BatchCounts) -> Batch:
    return Batch(**dataclasses.asdict(counts), percent=counts.percent)


@router.post("", status_code=202, response_model=Batch)
def submit_batch(body: BatchSubmission, ctx: Context, principal: Submitter) -> Batch:
    """Validate every job (422 lists each problem as ``jobs.N.…``), then enqueue them all."""
    items = []
    for job in body.jobs:
        check_submission(ctx.app, principal, job.type, job.queue, job.priority)
        item = job.model_dump(exclude_none=True)
        if job.idempotency_key:
            item["idempotency_key"] = scoped_idempotency_key(principal, job.idempotency_key)
        items.append(item)
    batches.validate_all(ctx.app, items)
    ctx.limiter.hit(principal.key_id, cost=len(items))
    batch_id, _ = batches.submit_batch(ctx.app, items, tenant=principal.tenant)
    return _out(batches.batch_counts(ctx.app, batch_id))


@router.get("/{batch_id}", response_model=Batch)
def get_batch(batch_id: BatchId, ctx: Context, principal: Reader) -> Batch:
    """A batch's counts: total, queued, running, succeeded, failed, cancelled, percent."""
    try:
        counts = batches.batch_counts(ctx.app, batch_id)
    except NotFound:
        # Its live record expired (CELERY_RESULT_EXPIRES): count from the job store.
        counts = _from_store(ctx, batch_id)
    if not principal.sees(counts.tenant):
        raise NotFound(f"no batch {batch_id}")
    return _out(counts)


def _from_store(ctx: Context, batch_id: str) -> batches.BatchCounts:
    record = ctx.store().get_batch(batch_id)
    if record is None:
        raise NotFound(f"no batch {batch_id}")
    by_status: dict[str, int] = record.counts
    total = record.total or sum(by_status.values())
    return batches.BatchCounts(
        id=record.id,
        tenant=record.tenant,
        created_at=record.created_at,
        total=total,
        queued=by_status.get("queued", 0)
        + by_status.get("scheduled", 0)
        + max(0, total - sum(by_status.values())),
        running=by_status.get("started", 0) + by_status.get("retrying", 0),
        succeeded=by_status.get("succeeded", 0),
        failed=by_status.get("failed", 0),
        cancelled=by_status.get("cancelled", 0),
    )
