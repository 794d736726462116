"""The job store's queries and its one write path: :class:`JobStore`."""

from __future__ import annotations

import base64
import functools
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from conveyor.errors import StoreError
from conveyor.events import Event
from conveyor.settings import Settings, mask_url
from conveyor.store import merge, schema
from conveyor.store.db import check_connection
from conveyor.store.filters import JobFilters, where_jobs
from conveyor.store.models import BatchRow, DeadLetterRow, JobRow
from conveyor.store.records import BatchRecord, DeadLetterRecord, JobRecord, RetentionCounts

if TYPE_CHECKING:
    import redis

    from conveyor.store.recorder import RecorderLag

#: One event to record: its stream id as an integer (see ``merge.sid_number``) and the
#: event (a decoded dict is validated first: see ``merge.as_event``).
SidEvent = tuple[int, "Event | Mapping[str, Any]"]


@functools.cache
def _job_upsert(dialect: str) -> Insert:
    return merge.job_upsert(dialect)


@functools.cache
def _batch_upsert(dialect: str) -> Insert:
    return merge.batch_upsert(dialect)


class JobStore:
    """Reads the job history; :meth:`record` is the recorder's (only) way to write it."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.dialect = engine.dialect.name

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return mask_url(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # ---------------------------------------------------------------- schema

    def check(self) -> None:
        """:class:`StoreError` if the database is unreachable or its schema is newer than ours."""
        check_connection(self.engine)
        with self._reading() as connection:
            schema.check_known(
                schema.current_revision(connection),
                self.engine.url.render_as_string(hide_password=False),
            )

    def upgrade(self) -> tuple[str | None, str]:
        """Apply schema migrations; return (revision before, revision after)."""
        check_connection(self.engine)
        try:
            return schema.upgrade(self.engine)
        except DBAPIError as exc:
            raise StoreError(f"could not migrate the job store at {self.url}: {exc.orig}") from None

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        with self._reading() as connection:
            return schema.current_revision(connection)

    # ----------------------------------------------------------------- write

    def record(self, events: Sequence[SidEvent]) -> list[tuple[int, str]]:
        """Merge ``events`` into the store in one transaction (see :mod:`conveyor.store.merge`).

        Recording the same events again, or in another order, leaves the same rows.
        Returns the events left out as malformed: (sid, reason) for each.
        """
        with self.engine.begin() as connection:
            return self._record(connection, events)

    def _record(self, connection: Connection, events: Sequence[SidEvent]) -> list[tuple[int, str]]:
        per_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
        batches: dict[str, dict[str, Any]] = {}
        failed: list[str] = []
        submitted: list[str] = []
        dead_letter_events: list[Event] = []
        skipped: list[tuple[int, str]] = []
        for sid, item in sorted(events, key=lambda item: item[0]):
            try:
                event = merge.as_event(item)
                if not event.is_job_event:
                    dead_letter_events.append(event)
                    continue
                row = merge.job_row(sid, event)
            except merge.MalformedEvent as exc:
                skipped.append((sid, str(exc)))
                continue
            per_job[event.job_id].append(row)
            if event.kind == "failed":
                failed.append(event.job_id)
            if event.has("payload"):
                submitted.append(event.job_id)
            if event.batch_id and event.batch_id not in batches:
                batches[event.batch_id] = {
                    "id": event.batch_id,
                    "tenant": event.tenant,
                    "created_at": row["created_at"],
                    "total": event.batch_total,
                }
        # One multi-row upsert per "round": the k-th event of every job, so no statement
        # touches a row twice and each job's events apply in stream order.
        queues = [merge.drop_superseded(rows) for rows in per_job.values()]
        depth = max((len(rows) for rows in queues), default=0)
        for k in range(depth):
            connection.execute(
                _job_upsert(self.dialect), [rows[k] for rows in queues if len(rows) > k]
            )
        if batches:
            connection.execute(_batch_upsert(self.dialect), list(batches.values()))
        if failed:
            retention = self.settings.dead_letter_retention_s
            connection.execute(merge.dead_letter_upsert(self.dialect, failed, retention))
        if submitted:
            # A failed event recorded before its job's submission left these unknown.
            def known(column: Any) -> Any:
                source = select(column).where(JobRow.id == DeadLetterRow.job_id)
                return func.coalesce(getattr(DeadLetterRow, column.key), source.scalar_subquery())

            connection.execute(
                update(DeadLetterRow)
                .where(DeadLetterRow.job_id.in_(submitted))
                .values(
                    payload=known(JobRow.payload),
                    tenant=known(JobRow.tenant),
                    priority=known(JobRow.priority),
                )
            )
        for event in dead_letter_events:
            job_id = event.job_id
            if event.kind == "dead_letter_purged":
                connection.execute(delete(DeadLetterRow).where(DeadLetterRow.job_id == job_id))
            else:
                connection.execute(
                    update(DeadLetterRow)
                    .where(DeadLetterRow.job_id == job_id)
                    .values(replayed_as=event.replayed_as, replayed_at=event.ts)
                )
        return skipped

    # ------------------------------------------------------------------ read

    def _reading(self) -> Any:
        return _Reading(self)

    def get_job(self, job_id: str) -> JobRecord | None:
        """One job, or None if the store has no record of it."""
        with self._reading() as connection:
            row = connection.execute(select(JobRow).where(JobRow.id == job_id)).mappings().first()
        return None if row is None else JobRecord.model_validate(dict(row))

    def list_jobs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        **filters: Unpack[JobFilters],
    ) -> tuple[list[JobRecord], str | None]:
        """Jobs newest first, filtered; returns (page, cursor of the next page or None).

        ``filters`` are those of :class:`~conveyor.store.filters.JobFilters`:
        ``status``, ``type``, ``queue``, ``tenant``; ``since``/``until``, unix times
        bounding ``created_at`` (``until`` excluded); ``payload_match`` (field, value)
        keeps jobs whose payload's top-level field equals the value as text.
        ``cursor=None`` asks for the first page, so stop when the cursor returned is
        None (or use :meth:`iter_jobs`, which does).
        """
        query = where_jobs(select(JobRow), filters)
        if cursor is not None:
            created_at, job_id = _decode_cursor(cursor)
            query = query.where(tuple_(JobRow.created_at, JobRow.id) < (created_at, job_id))
        query = query.order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit + 1)
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
        records = [JobRecord.model_validate(dict(row)) for row in rows[:limit]]
        more = len(rows) > limit and records
        next_cursor = _encode_cursor(records[-1].created_at, records[-1].id) if more else None
        return records, next_cursor

    def iter_jobs(
        self, *, page_size: int = 500, **filters: Unpack[JobFilters]
    ) -> Iterator[JobRecord]:
        """Every job that matches ``filters`` (those of :meth:`list_jobs`), newest first,
        read page by page.

        :meth:`list_jobs` returns ``None`` as the cursor after the last page, and a
        call with ``cursor=None`` starts again at the first page; this follows the
        cursors and stops there.
        """
        cursor: str | None = None
        while True:
            page, cursor = self.list_jobs(limit=page_size, cursor=cursor, **filters)
            yield from page
            if cursor is None:
                return

    def count_by_status(
        self, tenant: str | None = None, since: float | None = None
    ) -> dict[str, int]:
        """How many jobs are in each status (statuses with none are left out)."""
        query = select(JobRow.status, func.count()).group_by(JobRow.status)
        if tenant is not None:
            query = query.where(JobRow.tenant == tenant)
        if since is not None:
            query = query.where(JobRow.created_at >= since)
        with self._reading() as connection:
            return {str(status): int(count) for status, count in connection.execute(query)}

    def get_dead_letter(self, job_id: str) -> DeadLetterRecord | None:
        """One dead letter, or None."""
        query = select(DeadLetterRow).where(DeadLetterRow.job_id == job_id)
        with self._reading() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else DeadLetterRecord.model_validate(dict(row))

    def list_dead_letters(
        self,
        type: str | None = None,
        queue: str | None = None,
        error_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        tenant: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetterRecord]:
        """Dead letters, most recently failed first; ``since``/``until`` bound ``failed_at``."""
        query = _where_equal(
            select(DeadLetterRow),
            (DeadLetterRow.type, type),
            (DeadLetterRow.queue, queue),
            (DeadLetterRow.error_type, error_type),
            (DeadLetterRow.tenant, tenant),
        )
        if since is not None:
            query = query.where(DeadLetterRow.failed_at >= since)
        if until is not None:
            query = query.where(DeadLetterRow.failed_at < until)
        if not include_replayed:
            query = query.where(DeadLetterRow.replayed_as.is_(None))
        query = query.order_by(DeadLetterRow.failed_at.desc(), DeadLetterRow.job_id.desc())
        with self._reading() as connection:
            rows = connection.execute(query.limit(limit)).mappings().all()
        return [DeadLetterRecord.model_validate(dict(row)) for row in rows]

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        """A batch with its jobs counted by status, or None."""
        with self._reading() as connection:
            row = (
                connection.execute(select(BatchRow).where(BatchRow.id == batch_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            counts = connection.execute(
                select(JobRow.status, func.count())
                .where(JobRow.batch_id == batch_id)
                .group_by(JobRow.status)
            ).all()
        return BatchRecord(
            **dict(row),
            counts={str(status): int(count) for status, count in counts},
        )

    # ------------------------------------------------------------ operations

    def apply_retention(self, now: float | None = None, batch_size: int = 1000) -> RetentionCounts:
        """Delete what has outlived its retention (see :mod:`conveyor.store.retention`)."""
        from conveyor.store.retention import apply_retention

        return apply_retention(self, now if now is not None else time.time(), batch_size)

    def recorder_lag(self, client: redis.Redis) -> RecorderLag:
        """How far the recorder is behind the event stream (read from Redis)."""
        from conveyor.store.recorder import recorder_lag

        return recorder_lag(client)


class _Reading:
    """A read connection whose database errors become :class:`StoreError`."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.connection: Connection | None = None

    def __enter__(self) -> Connection:
        try:
            self.connection = self.store.engine.connect()
        except DBAPIError as exc:
            raise StoreError(f"job store at {self.store.url} is unreachable: {exc.orig}") from None
        return self.connection

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        assert self.connection is not None
        self.connection.close()
        if isinstance(exc, DBAPIError):
            raise StoreError(f"job store at {self.store.url}: {exc.orig}") from None


def _where_equal(query: Select[Any], *filters: tuple[Any, Any]) -> Select[Any]:
    """``query`` narrowed to ``column == value`` for each (column, value) whose value is given."""
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    return query


def _encode_cursor(created_at: float, job_id: str) -> str:
    raw = f"{created_at!r}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, job_id = raw.partition("|")
        return float(created_at), job_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"invalid cursor {cursor!r}") from None
