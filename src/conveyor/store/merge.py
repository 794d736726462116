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

import math
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, func, literal, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from conveyor.events import RANK, TERMINAL, TERMINAL_RANK
from conveyor.store.models import BatchRow, DeadLetterRow, JobRow

JOB_EVENTS = frozenset(RANK)
DEAD_LETTER_EVENTS = frozenset({"dead_letter_replayed", "dead_letter_purged"})
KNOWN_EVENTS = JOB_EVENTS | DEAD_LETTER_EVENTS
_INIT_FIELDS = ("payload", "idempotency_key", "tenant", "batch_id", "replay_of", "tags")


class MalformedEvent(ValueError):
    """An entry of the stream that is not a usable event (not JSON, unknown type, no id…)."""


def sid_number(stream_id: str) -> int:
    """A stream id (``"1763731200123-4"``) as an integer that sorts the same way."""
    ms, _, seq = stream_id.partition("-")
    return int(ms) * 1_000_000 + min(int(seq or 0), 999_999)


def _text(event: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = event.get(name)
    if value is None or value == "":
        if required:
            raise MalformedEvent(f"missing {name}")
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{name} is not a string")
    return value


def _number(event: Mapping[str, Any], name: str, default: float | None = None) -> float | None:
    value = event.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedEvent(f"{name} is not a number")
    return float(value)


def _int(event: Mapping[str, Any], name: str) -> int:
    value = _number(event, name, 0.0)
    assert value is not None
    return int(value)


def check_event(event: Any) -> str:
    """The event's type; :class:`MalformedEvent` if it is not an event at all.

    A job event's own fields are checked when its row is built (:func:`job_row`).
    """
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    kind = event.get("type")
    if kind not in KNOWN_EVENTS:
        raise MalformedEvent(f"unknown type {kind!r}")
    _text(event, "job_id", required=True)
    if _number(event, "ts") is None:
        raise MalformedEvent("missing ts")
    if kind == "dead_letter_replayed":
        _text(event, "replayed_as", required=True)
    return str(kind)


def job_row(sid: int, event: Mapping[str, Any]) -> dict[str, Any]:
    """The ``jobs`` row one job event describes (every column, for the upsert)."""
    kind = str(event["type"])
    ts = _number(event, "ts")
    assert ts is not None
    terminal = kind in TERMINAL
    retry_in = _number(event, "retry_in_s")
    due_at = _number(event, "due_at")
    if kind == "retrying" and retry_in is not None:
        due_at = ts + retry_in
    progress = _number(event, "progress") if kind == "progress" else None
    priority = _number(event, "priority")
    tags = event.get("tags")
    return {
        "id": _text(event, "job_id", required=True),
        "type": _text(event, "job_type", required=True),
        "queue": _text(event, "queue", required=True),
        "priority": None if priority is None else int(priority),
        "status": "started" if kind == "progress" else kind,
        "rank": RANK[kind],
        "progress": 100.0 if kind == "succeeded" else progress,
        "stage": _text(event, "stage") if kind == "progress" else None,
        "message": _text(event, "message") if kind == "progress" else None,
        "attempt": _int(event, "attempt"),
        "deliveries": _int(event, "deliveries"),
        "worker": _text(event, "worker"),
        "payload": event.get("payload"),
        "result": event.get("result") if kind == "succeeded" else None,
        "error_type": _text(event, "error_type"),
        "error_message": _text(event, "error_message"),
        "traceback": _text(event, "traceback"),
        "created_at": _number(event, "created_at", ts),
        "due_at": due_at,
        "started_at": ts if kind == "started" else None,
        "finished_at": ts if terminal else None,
        "updated_at": ts,
        "idempotency_key": _text(event, "idempotency_key"),
        "tenant": _text(event, "tenant"),
        "batch_id": _text(event, "batch_id"),
        "replay_of": _text(event, "replay_of"),
        "tags": tags if isinstance(tags, list) else None,
        "state_sid": sid,
        "start_sid": sid if kind == "started" else None,
        "progress_sid": sid if kind == "progress" else None,
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
