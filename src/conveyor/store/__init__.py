"""The job store: job history in SQL (SQLite embedded, PostgreSQL in production).

``open_store(settings)`` returns a :class:`JobStore` on the database that
``CONVEYOR_DATABASE_URL`` names (default: ``CONVEYOR_HOME/jobs.db``; see
:mod:`conveyor.store.db`), its tables named with ``CONVEYOR_STORE_TABLE_PREFIX``.
It does not migrate; :meth:`JobStore.upgrade` does (the recorder and
``conveyor db upgrade`` call it).
The recorder (:mod:`conveyor.store.recorder`) is the store's only writer.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from conveyor.errors import StoreError
from conveyor.store.records import BatchRecord, DeadLetterRecord, JobRecord, RetentionCounts

if TYPE_CHECKING:
    from conveyor.settings import Settings
    from conveyor.store.repository import JobStore

__all__ = [
    "BatchRecord",
    "DeadLetterRecord",
    "JobRecord",
    "JobStore",
    "RetentionCounts",
    "find_job",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # SQLAlchemy and Alembic load when the store is first used, not with its records:
    # a quick command (`conveyor --help`, `status`) never pays for them.
    if name == "JobStore":
        from conveyor.store.repository import JobStore

        return JobStore
    raise AttributeError(f"module 'conveyor.store' has no attribute {name!r}")


def open_store(settings: Settings) -> JobStore:
    """A :class:`JobStore` on the configured database (connects lazily; never migrates)."""
    from conveyor.store.db import database_url

    return _open(database_url(settings), settings)


def _open(url: str, settings: Settings) -> JobStore:
    from conveyor.store.db import create_store_engine
    from conveyor.store.models import use_prefix
    from conveyor.store.repository import JobStore

    use_prefix(settings.store_table_prefix)
    engine = create_store_engine(url, busy_timeout_s=settings.store_busy_timeout_s)
    return JobStore(engine, settings)


_shared_store = functools.cache(_open)


def find_job(settings: Settings, job_id: str) -> JobRecord | None:
    """The store's record of one job, or None — also when there is no store yet.

    Used when a job's live state has expired. The store is opened once per database
    and kept. An SQLite store that was never created is not created here; an
    unreachable database raises :class:`~conveyor.errors.StoreError`.
    """
    from conveyor.store.db import database_url, sqlite_file_missing

    url = database_url(settings)
    if sqlite_file_missing(url):
        return None
    store = _shared_store(url, settings)
    try:
        return store.get_job(job_id)
    except StoreError as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return None
        raise
