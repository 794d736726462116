"""Read-only summaries of the job store for the dashboard: activity over time, batches.

Each query is bounded: by a time window that the ``created_at`` indexes serve, or
by a row limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, cast, func, select

from conveyor.store.models import BatchRow, JobRow
from conveyor.store.records import BatchRecord


@dataclass
class Bucket:
    """Jobs created in one time slice, counted by how they stand now."""

    start: float
    succeeded: int = 0
    failed: int = 0
    other: int = 0

    @property
    def finished(self) -> int:
        """Succeeded plus failed."""
        return self.succeeded + self.failed

    @property
    def failure_rate(self) -> float | None:
        """Failed over finished, None when nothing finished."""
        return self.failed / self.finished if self.finished else None


@dataclass
class Activity:
    """Buckets of ``bucket_s`` seconds from ``since`` to now, oldest first."""

    since: float
    bucket_s: float
    buckets: list[Bucket] = field(default_factory=list)
    #: Every job of the window by status.
    totals: dict[str, int] = field(default_factory=dict)


def activity(
    store: Any, since: float, until: float, buckets: int, tenant: str | None = None
) -> Activity:
    """Jobs created in ``[since, until)`` in ``buckets`` equal slices, by final outcome."""
    width = (until - since) / buckets
    offset = (JobRow.created_at - since) / width
    # Both sides are ≥ 0 here, so truncation is the floor; PostgreSQL's CAST rounds.
    slot = func.floor(offset) if store.dialect == "postgresql" else cast(offset, Integer)
    query = (
        select(slot.label("slot"), JobRow.status, func.count())
        .where(JobRow.created_at >= since, JobRow.created_at < until)
        .group_by("slot", JobRow.status)
    )
    if tenant is not None:
        query = query.where(JobRow.tenant == tenant)
    result = Activity(since=since, bucket_s=width)
    result.buckets = [Bucket(start=since + i * width) for i in range(buckets)]
    with store._reading() as connection:
        rows = connection.execute(query).all()
    for index, status, count in rows:
        result.totals[str(status)] = result.totals.get(str(status), 0) + int(count)
        bucket = result.buckets[min(int(index), buckets - 1)]
        if status == "succeeded":
            bucket.succeeded += int(count)
        elif status == "failed":
            bucket.failed += int(count)
        else:
            bucket.other += int(count)
    return result


def recent_batches(store: Any, tenant: str | None = None, limit: int = 50) -> list[BatchRecord]:
    """The newest batches with their jobs counted by status."""
    query = select(BatchRow).order_by(BatchRow.created_at.desc()).limit(limit)
    if tenant is not None:
        query = query.where(BatchRow.tenant == tenant)
    with store._reading() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
        if not rows:
            return []
        counts = connection.execute(
            select(JobRow.batch_id, JobRow.status, func.count())
            .where(JobRow.batch_id.in_([row["id"] for row in rows]))
            .group_by(JobRow.batch_id, JobRow.status)
        ).all()
    by_batch: dict[str, dict[str, int]] = {}
    for batch_id, status, count in counts:
        by_batch.setdefault(str(batch_id), {})[str(status)] = int(count)
    return [BatchRecord(**row, counts=by_batch.get(row["id"], {})) for row in rows]
