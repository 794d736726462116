"""Retention: how long finished jobs and dead letters stay in the store.

* succeeded and cancelled jobs: ``CONVEYOR_JOB_RETENTION`` after they finished;
* dead letters: until their ``expires_at`` (failed_at + ``CONVEYOR_DEAD_LETTER_RETENTION``
  when recorded);
* failed jobs: once ``CONVEYOR_DEAD_LETTER_RETENTION`` has passed since they failed and
  their dead letter is gone (expired or purged);
* batches: once older than the job retention and none of their jobs is left.

Jobs that have not finished are never deleted. Each table is cleared in batches of
``batch_size`` rows, one short transaction each, so a large backlog of expired rows
never holds a long lock (the recorder keeps writing meanwhile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, or_, select

from conveyor.store.models import BatchRow, DeadLetterRow, JobRow
from conveyor.store.records import RetentionCounts

if TYPE_CHECKING:
    from conveyor.store.repository import JobStore


def _delete_in_batches(store: JobStore, table: Any, key: Any, condition: Any, size: int) -> int:
    total = 0
    while True:
        chosen = select(key).where(*condition).limit(size).scalar_subquery()
        with store.engine.begin() as connection:
            deleted = connection.execute(delete(table).where(key.in_(chosen))).rowcount
        total += deleted
        if deleted < size:
            return total


def apply_retention(store: JobStore, now: float, batch_size: int = 1000) -> RetentionCounts:
    """Delete every row past its retention at ``now``; return how many, per table."""
    settings = store.settings
    job_cutoff = now - settings.job_retention_s
    failed_cutoff = now - settings.dead_letter_retention_s
    counts = RetentionCounts()
    counts.dead_letters = expire_dead_letters(store, now, batch_size=batch_size)
    counts.jobs = _delete_in_batches(
        store,
        JobRow,
        JobRow.id,
        # created_at ≤ finished_at: the bound on created_at lets the (status, created_at)
        # index find the candidates.
        (
            JobRow.status.in_(("succeeded", "cancelled")),
            JobRow.created_at < job_cutoff,
            JobRow.finished_at < job_cutoff,
        ),
        batch_size,
    )
    counts.jobs += _delete_in_batches(
        store,
        JobRow,
        JobRow.id,
        (
            JobRow.status == "failed",
            JobRow.created_at < failed_cutoff,
            JobRow.finished_at < failed_cutoff,
            ~exists().where(DeadLetterRow.job_id == JobRow.id),
        ),
        batch_size,
    )
    counts.batches = _delete_in_batches(
        store,
        BatchRow,
        BatchRow.id,
        (BatchRow.created_at < job_cutoff, ~exists().where(JobRow.batch_id == BatchRow.id)),
        batch_size,
    )
    return counts


def expire_dead_letters(
    store: JobStore, now: float, max_age_s: float | None = None, batch_size: int = 1000
) -> int:
    """Delete dead letters past their ``expires_at``, or (``max_age_s``) failed longer ago."""
    condition = DeadLetterRow.expires_at <= now
    if max_age_s is not None:
        condition = or_(condition, DeadLetterRow.failed_at < now - max_age_s)
    return _delete_in_batches(store, DeadLetterRow, DeadLetterRow.job_id, (condition,), batch_size)
