"""The job store's tables as SQLAlchemy 2.x typed ORM models.

Timestamps are unix seconds (floats), as in events and :class:`~conveyor.state.JobState`.
The ``*_sid`` columns of :class:`JobRow` are the recorder's bookkeeping: the stream id
(as a sortable integer, see :func:`conveyor.store.merge.sid_number`) of the event that
last set a group of columns, which makes replaying events in any order give one result.

Every table name starts with a prefix (``CONVEYOR_STORE_TABLE_PREFIX``, default
``conveyor_``), so the store can share a database with an application's own
``jobs`` table; index names carry the prefixed table name. :func:`use_prefix`
sets it for the process, before the first statement runs (the job store does so
when it is opened): one process uses one prefix.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    quoted_name,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON columns store Python ``None`` as SQL NULL (so COALESCE can fill them in later).
Json = JSON(none_as_null=True)


#: The prefix of every table name unless ``CONVEYOR_STORE_TABLE_PREFIX`` says otherwise.
DEFAULT_PREFIX = "conveyor_"


class Base(DeclarativeBase):
    """Declarative base of every job-store table."""


class JobRow(Base):
    """One job, updated in place as its events are recorded."""

    __tablename__ = DEFAULT_PREFIX + "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(SmallInteger)
    progress: Mapped[float | None] = mapped_column(Double)
    stage: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    deliveries: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    result: Mapped[Any] = mapped_column(Json, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    due_at: Mapped[float | None] = mapped_column(Double)
    started_at: Mapped[float | None] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255))
    batch_id: Mapped[str | None] = mapped_column(String(64))
    replay_of: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[Any] = mapped_column(Json, nullable=True)
    state_sid: Mapped[int] = mapped_column(BigInteger)
    start_sid: Mapped[int | None] = mapped_column(BigInteger)
    progress_sid: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        # Newest first, keyset-paginated on (created_at, id), optionally filtered. The
        # status one also serves counts by status and retention (status, created_at <).
        Index("ix_conveyor_jobs_created", "created_at", "id"),
        Index("ix_conveyor_jobs_status_created", "status", "created_at", "id"),
        Index("ix_conveyor_jobs_type_created", "type", "created_at", "id"),
        Index("ix_conveyor_jobs_queue_created", "queue", "created_at", "id"),
        # Partial: most deployments have no tenants or batches, and an index the
        # recorder need not touch keeps its upserts fast.
        Index(
            "ix_conveyor_jobs_tenant_created",
            "tenant",
            "created_at",
            "id",
            postgresql_where=text("tenant IS NOT NULL"),
            sqlite_where=text("tenant IS NOT NULL"),
        ),
        Index(
            "ix_conveyor_jobs_batch",
            "batch_id",
            postgresql_where=text("batch_id IS NOT NULL"),
            sqlite_where=text("batch_id IS NOT NULL"),
        ),
        # Room in each page for in-place (HOT) updates: a progress event rewrites a row
        # without touching its indexes.
        {"postgresql_with": {"fillfactor": 70}},
    )


class DeadLetterRow(Base):
    """A failed job's dead letter: its full input and why it failed."""

    __tablename__ = DEFAULT_PREFIX + "dead_letters"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    deliveries: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(255))
    failed_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)
    replayed_as: Mapped[str | None] = mapped_column(String(64))
    replayed_at: Mapped[float | None] = mapped_column(Double)

    __table_args__ = (
        Index("ix_conveyor_dead_letters_failed", "failed_at", "job_id"),
        Index("ix_conveyor_dead_letters_queue_failed", "queue", "failed_at"),
        Index("ix_conveyor_dead_letters_expires", "expires_at"),
    )


class BatchRow(Base):
    """A group of jobs submitted together; its counts come from ``jobs.batch_id``."""

    __tablename__ = DEFAULT_PREFIX + "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Double)
    total: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_conveyor_batches_tenant_created", "tenant", "created_at"),)


class ApiKeyRow(Base):
    """An HTTP API key: only its hash is stored."""

    __tablename__ = DEFAULT_PREFIX + "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[Any] = mapped_column(Json, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)
    #: Queues the key may name besides each job type's own (None: none).
    queues: Mapped[Any] = mapped_column(Json, nullable=True)
    #: The highest priority the key may ask for (None: the default, 7).
    max_priority: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (Index("ix_conveyor_api_keys_tenant", "tenant"),)


#: Each table's name without a prefix (what migrations of older stores know it as).
BASE_NAMES = ("jobs", "dead_letters", "batches", "api_keys")
_current = [DEFAULT_PREFIX]


def table_prefix() -> str:
    """The table-name prefix this process uses."""
    return _current[0]


def use_prefix(prefix: str) -> None:
    """Name every table ``prefix + base name`` (and its indexes after it) from now on."""
    old = _current[0]
    if prefix == old:
        return
    for base in BASE_NAMES:
        table = Base.metadata.tables[DEFAULT_PREFIX + base]
        table.name = prefix + base
        for index in table.indexes:
            name = str(index.name).replace(f"ix_{old}{base}_", f"ix_{prefix}{base}_", 1)
            index.name = quoted_name(name, None)
    _current[0] = prefix
