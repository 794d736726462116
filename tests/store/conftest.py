"""Job-store fixtures: every store test runs on SQLite (temp dir) and on PostgreSQL.

PostgreSQL is the local server at 127.0.0.1:5432 (trust auth, database ``test``);
its tests are skipped when it is unreachable. Each test gets its own schema,
``conveyor_t_<random>``, dropped at the end; nothing else in the database is touched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from conveyor import Conveyor, Settings
from conveyor.events import EventWriter, new_event
from conveyor.store import JobStore, open_store

PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=2"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_pg_ok: bool | None = None


def pg_reachable() -> bool:
    """Whether the local PostgreSQL answers (checked once per session)."""
    global _pg_ok
    if _pg_ok is None:
        try:
            with psycopg.connect(PG_ADMIN) as connection:
                connection.execute("SELECT 1")
            _pg_ok = True
        except psycopg.Error:
            _pg_ok = False
    return _pg_ok


def pg_admin(sql: str, *params: Any) -> None:
    """Run one statement as the admin user, in autocommit."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(sql, params or None)  # type: ignore[arg-type]


def pg_url(schema: str, user: str = "postgres") -> str:
    """A URL whose connections use ``schema`` as their search path."""
    return f"postgresql+psycopg://{user}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'jobs.db'}"
        return
    if not pg_reachable():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    schema = f"conveyor_t_{uuid.uuid4().hex[:12]}"
    pg_admin(f"CREATE SCHEMA {schema}")
    try:
        yield pg_url(schema)
    finally:
        pg_admin(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store_settings(database_url: str, tmp_path: Path, broker_url: str) -> Settings:
    """Settings for the store under test (and the session broker)."""
    return Settings(
        redis_url=broker_url,
        home=tmp_path / "home",
        database_url=database_url,
        recorder_claim_idle_s=0.5,
        recorder_poll_s=0.1,
        store_busy_timeout_s=0.5,
    )


@pytest.fixture
def store(store_settings: Settings) -> Iterator[JobStore]:
    """A migrated, empty job store."""
    opened = open_store(store_settings)
    opened.upgrade()
    yield opened
    opened.close()


@pytest.fixture
def writer(store_settings: Settings, redis_client: redis.Redis) -> EventWriter:
    """Writes events through the real state-change script, as workers and clients do."""
    return Conveyor(store_settings).event_writer()


def lifecycle(job_id: str, outcome: str = "succeeded", steps: int = 2) -> list[dict[str, Any]]:
    """The events of one job, in the order the platform writes them."""
    common = {"attempt": 0, "deliveries": 1, "worker": "w-1@host"}
    events = [
        new_event("queued", job_id, "diag.sleep", "processing", priority=3, payload={"n": job_id}),
        new_event("started", job_id, "diag.sleep", "processing", **common),
    ]
    for step in range(1, steps + 1):
        pct = 100.0 * step / (steps + 1)
        events.append(
            new_event(
                "progress",
                job_id,
                "diag.sleep",
                "processing",
                progress=pct,
                stage=f"s{step}",
                **common,
            )
        )
    if outcome == "succeeded":
        events.append(
            new_event("succeeded", job_id, "diag.sleep", "processing", result=1, **common)
        )
    else:
        events.append(
            new_event(
                "failed",
                job_id,
                "diag.sleep",
                "processing",
                error_type="ValueError",
                error_message="bad",
                traceback="Traceback…",
                **common,
            )
        )
    return events


def emit_jobs(writer: EventWriter, job_ids: list[str], steps: int = 2, fail_every: int = 0) -> int:
    """Write whole lifecycles for ``job_ids`` through the script (pipelined); return event count."""
    count = 0
    pipe = writer.client.pipeline(transaction=False)
    for index, job_id in enumerate(job_ids):
        outcome = "failed" if fail_every and index % fail_every == 0 else "succeeded"
        for event in lifecycle(job_id, outcome, steps):
            writer.emit(event, mode="init" if event["type"] == "queued" else "normal", client=pipe)
            count += 1
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return count


def wait_recorded(client: redis.Redis, timeout: float = 60.0) -> None:
    """Wait until the recorder's group has nothing pending or unread."""
    from conveyor.store.recorder import recorder_lag
    from conveyor.testing import wait_until

    def caught_up() -> bool:
        lag = recorder_lag(client)
        return lag.group and lag.pending == 0 and lag.unread == 0

    wait_until(caught_up, timeout=timeout, interval=0.05, what="the recorder to catch up")


def now() -> float:
    """The current unix time."""
    return time.time()
