"""How events become rows: one upsert per event, order-safe and idempotent.

The Lua script that writes events (:mod:`conveyor.events`) refuses backward moves,
so the stream holds each job's accepted changes in order. The recorder may still
see them out of order (two recorders, or a crashed recorder's pending entries
claimed later) and more than once (a redelivery), so the upsert merges each event
into the row by rules that give the same row whatever the order:

* every event carries its stream id (``sid``, as a sortable integer);
* the *status group* (status, rank, attempt, finished_at, result, errors, due_at)
  moves only for an event newer than the row's (``sid`` above ``state_sid``) that
  the Lua rule would accept: terminal is final, an older attempt never overwrites a
  newer one, and within an attempt the rank never goes down;
* an event older than the row's state was accepted in its time, so it may still
  fill in what only it carries: the *start group* (started_at, worker — the latest
  delivery's ``started`` wins) and the *progress group* (progress, stage, message —
  the latest ``progress`` wins; a succeeded job stays at 100 %);
* what only the submitter knows (payload, priority, idempotency key, tenant, batch,
  replay_of, tags) is filled in once and never overwritten, like the script's HSETNX;
* ``created_at`` is the earliest event time, ``updated_at`` the latest, and
  ``deliveries`` the highest count seen.

A redelivered event has ``sid`` equal to what the row already holds, so it changes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, func, literal, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from conveyor.events import RANK, TERMINAL, TERMINAL_RANK, Event
from conveyor.events import MalformedEvent as MalformedEvent  # where the store's callers catch it
from conveyor.store.models import BatchRow, DeadLetterRow, JobRow

_INIT_FIELDS = ("payload", "idempotency_key", "tenant", "batch_id", "replay_of", "tags")


def sid_number(stream_id: str) -> int:
    """A stream id (``"1763731200123-4"``) as an integer that sorts the same way."""
    ms, _, seq = stream_id.partition("-")
    return int(ms) * 1_000_000 + min(int(seq or 0), 999_999)


def as_event(event: Event | Mapping[str, Any]) -> Event:
    """``event`` as an :class:`Event` (a decoded dict is validated:
    :class:`MalformedEvent` if it is not an event at all)."""
    return event if isinstance(event, Event) else Event.from_dict(event)


def job_row(sid: int, event: Event) -> dict[str, Any]:
    """The ``jobs`` row one job event describes (every column, for the upsert)."""
    kind = event.kind
    ts = event.ts
    terminal = kind in TERMINAL
    due_at = event.due_at
    if kind == "retrying" and event.retry_in_s is not None:
        due_at = ts + event.retry_in_s
    reports = kind == "progress"
    return {
        "id": event.job_id,
        "type": event.job_type,
        "queue": event.queue,
        "priority": event.priority,
        "status": "started" if reports else kind.value,
        "rank": RANK[kind],
        "progress": 100.0 if kind == "succeeded" else (event.progress if reports else None),
        "stage": event.stage if reports else None,
        "message": event.message if reports else None,
        "attempt": event.attempt,
        "deliveries": event.deliveries,
        "worker": event.worker,
        "payload": event.payload,
        "result": event.result if kind == "succeeded" else None,
        "error_type": event.error_type,
        "error_message": event.error_message,
        "traceback": event.traceback,
        "created_at": ts if event.created_at is None else event.created_at,
        "due_at": due_at,
        "started_at": ts if kind == "started" else None,
        "finished_at": ts if terminal else None,
        "updated_at": ts,
        "idempotency_key": event.idempotency_key,
        "tenant": event.tenant,
        "batch_id": event.batch_id,
        "replay_of": event.replay_of,
        "tags": None if event.tags is None else list(event.tags),
        "state_sid": sid,
        "start_sid": sid if kind == "started" else None,
        "progress_sid": sid if reports else None,
    }


def drop_superseded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One job's rows (in stream order) less the progress reports a later one replaces.

    A ``progress`` row directly followed by another ``progress`` row of the same
    attempt changes nothing the second does not overwrite, so a batch writes only
    the last of a run of reports: a job reporting often costs one upsert per batch.
    """
    kept = []
    for row, after in zip(rows, [*rows[1:], None], strict=True):
        if (
            after is not None
            and row["progress_sid"] is not None
            and after["progress_sid"] is not None
            and row["attempt"] == after["attempt"]
        ):
            continue
        kept.append(row)
    return kept


def _insert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect!r}")


def _least(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    return func.least(a, b) if dialect == "postgresql" else func.min(a, b)


def _greatest(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


def job_upsert(dialect: str) -> Insert:
    """The ``INSERT … ON CONFLICT DO UPDATE`` that merges one event into its job's row."""
    stmt = _insert(dialect, JobRow.__table__)
    e, j = stmt.excluded, JobRow.__table__.c
    stale = or_(
        j.rank >= TERMINAL_RANK,
        e.attempt < j.attempt,
        and_(e.attempt == j.attempt, e.rank < j.rank),
    )
    moves = and_(e.state_sid > j.state_sid, ~stale)
    # Accepted when it happened (older than the row's state), or acceptable now.
    accepted = or_(e.state_sid < j.state_sid, moves)
    starts = and_(
        accepted, e.start_sid.is_not(None), or_(j.start_sid.is_(None), e.start_sid > j.start_sid)
    )
    reports = and_(
        accepted,
        e.progress_sid.is_not(None),
        or_(j.progress_sid.is_(None), e.progress_sid > j.progress_sid),
    )
    succeeds = and_(moves, e.status == "succeeded")

    def on_move(name: str) -> Any:
        return case((moves, getattr(e, name)), else_=getattr(j, name))

    def prefer_new_on_move(name: str) -> Any:
        new, old = getattr(e, name), getattr(j, name)
        return case((moves, func.coalesce(new, old)), else_=func.coalesce(old, new))

    def error(name: str) -> Any:
        new, old = getattr(e, name), getattr(j, name)
        return case((succeeds, None), (moves, func.coalesce(new, old)), else_=old)

    def fill(name: str) -> Any:
        return func.coalesce(getattr(j, name), getattr(e, name))

    values: dict[str, Any] = {
        "status": on_move("status"),
        "rank": on_move("rank"),
        "attempt": on_move("attempt"),
        "state_sid": on_move("state_sid"),
        "finished_at": case(
            (moves, func.coalesce(e.finished_at, j.finished_at)), else_=j.finished_at
        ),
        "result": case((moves, func.coalesce(e.result, j.result)), else_=j.result),
        "error_type": error("error_type"),
        "error_message": error("error_message"),
        "traceback": error("traceback"),
        "due_at": prefer_new_on_move("due_at"),
        "started_at": case((starts, e.started_at), else_=j.started_at),
        "worker": case((starts, e.worker), else_=func.coalesce(j.worker, e.worker)),
        "start_sid": case((starts, e.start_sid), else_=j.start_sid),
        "progress": case(
            (succeeds, literal(100.0)),
            (j.status == "succeeded", j.progress),
            (reports, e.progress),
            else_=j.progress,
        ),
        "stage": case((reports, e.stage), else_=j.stage),
        "message": case((reports, e.message), else_=j.message),
        "progress_sid": case((reports, e.progress_sid), else_=j.progress_sid),
        "deliveries": _greatest(dialect, j.deliveries, e.deliveries),
        "created_at": _least(dialect, j.created_at, e.created_at),
        "updated_at": _greatest(dialect, j.updated_at, e.updated_at),
        "type": fill("type"),
        "queue": fill("queue"),
        "priority": fill("priority"),
        **{name: fill(name) for name in _INIT_FIELDS},
    }
    return cast(Insert, stmt.on_conflict_do_update(index_elements=[j.id], set_=values))


def dead_letter_upsert(dialect: str, job_ids: list[str], retention_s: float) -> Insert:
    """Dead letters for the ``failed`` jobs among ``job_ids``, from their ``jobs`` rows."""
    from sqlalchemy import select

    j = JobRow.__table__.c
    columns = [
        "job_id",
        "type",
        "queue",
        "priority",
        "payload",
        "error_type",
        "error_message",
        "traceback",
        "attempt",
        "deliveries",
        "worker",
        "tenant",
        "failed_at",
        "expires_at",
    ]
    source = select(
        j.id,
        j.type,
        j.queue,
        j.priority,
        j.payload,
        j.error_type,
        j.error_message,
        j.traceback,
        j.attempt,
        j.deliveries,
        j.worker,
        j.tenant,
        j.finished_at,
        j.finished_at + retention_s,
    ).where(j.id.in_(job_ids), j.status == "failed", j.finished_at.is_not(None))
    stmt = _insert(dialect, DeadLetterRow.__table__).from_select(columns, source)
    d = DeadLetterRow.__table__.c
    return cast(
        Insert,
        stmt.on_conflict_do_update(
            index_elements=[d.job_id],
            set_={
                "payload": func.coalesce(d.payload, stmt.excluded.payload),
                "tenant": func.coalesce(d.tenant, stmt.excluded.tenant),
                "priority": func.coalesce(d.priority, stmt.excluded.priority),
            },
        ),
    )


def batch_upsert(dialect: str) -> Insert:
    """Create or complete a ``batches`` row from a job event that names a batch."""
    stmt = _insert(dialect, BatchRow.__table__)
    b, e = BatchRow.__table__.c, stmt.excluded
    return cast(
        Insert,
        stmt.on_conflict_do_update(
            index_elements=[b.id],
            set_={
                "tenant": func.coalesce(b.tenant, e.tenant),
                "created_at": _least(dialect, b.created_at, e.created_at),
                "total": func.coalesce(b.total, e.total),
            },
        ),
    )
