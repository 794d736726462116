"""Job-store benchmark: recorder events/s, and the first page of `jobs --status failed`.

.venv/bin/python bench/store.py [--jobs 10000] [--rows 1000000] [--backends sqlite,postgresql]

For each back end (SQLite in a temp dir; PostgreSQL at 127.0.0.1:5432, database
`test`, in a private schema dropped at the end):

1. **Recorder throughput.** Whole job lifecycles (queued, started, 2 × progress,
   succeeded or failed: 5 events a job) are written through the real state-change
   script into an embedded Valkey's stream; then one recorder drains the backlog
   (default batch size) and we report events/s.
2. **List query at scale.** `--rows` job rows are bulk-inserted directly (2 % failed,
   spread over 30 days), the table analysed, then the first page (50 rows) of
   `JobStore.list_jobs(status="failed")` — the query `conveyor jobs --status failed`
   runs — is timed: median and worst of 20 runs, after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from rich.console import Console
from rich.table import Table

from conveyor import Conveyor, Settings
from conveyor.events import new_event
from conveyor.store import JobStore, open_store
from conveyor.store.models import JobRow
from conveyor.store.recorder import Recorder
from conveyor.testing import embedded_broker

PG_ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=2"
COLUMNS = (
    "id", "type", "queue", "priority", "status", "rank", "progress", "attempt", "deliveries",
    "worker", "payload", "created_at", "started_at", "finished_at", "updated_at", "state_sid",
)  # fmt: skip
console = Console(width=160)


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh database URL for ``backend``; a PostgreSQL schema is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        return
    schema = f"conveyor_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def recorder_throughput(store: JobStore, broker_url: str, jobs: int) -> tuple[int, float]:
    """(events, seconds) for one recorder draining ``jobs`` lifecycles from the stream."""
    client = redis.Redis.from_url(broker_url)
    client.delete("conveyor:events", "conveyor:recorder:stats")
    writer = Conveyor(store.settings).event_writer()
    pipe = client.pipeline(transaction=False)
    events = 0
    for index in range(jobs):
        job_id = uuid.uuid4().hex
        common = {"attempt": 0, "deliveries": 1, "worker": "bench-1@host"}
        lifecycle = [
            new_event(
                "queued", job_id, "diag.noop", "processing", priority=3, payload={"i": index}
            ),
            new_event("started", job_id, "diag.noop", "processing", **common),
            new_event("progress", job_id, "diag.noop", "processing", progress=33.0, **common),
            new_event("progress", job_id, "diag.noop", "processing", progress=66.0, **common),
        ]
        if index % 50:
            lifecycle.append(
                new_event("succeeded", job_id, "diag.noop", "processing", result=1, **common)
            )
        else:
            lifecycle.append(
                new_event("failed", job_id, "diag.noop", "processing", error_type="E",
                          error_message="bench", **common)
            )  # fmt: skip
        for event in lifecycle:
            writer.emit(event, mode="init" if event["type"] == "queued" else "normal", client=pipe)
            events += 1
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    recorder = Recorder(store, client)
    began = time.perf_counter()
    stats = recorder.drain()
    elapsed = time.perf_counter() - began
    assert stats.recorded == events, stats
    client.close()
    return events, elapsed


def _rows(count: int, now: float) -> Iterator[tuple[object, ...]]:
    rng = random.Random(1)
    span = 30 * 86400.0
    for index in range(count):
        created = now - span + span * index / count
        roll = rng.random()
        status = "failed" if roll < 0.02 else "queued" if roll < 0.03 else "succeeded"
        rank = 1 if status == "queued" else 9
        finished = None if status == "queued" else created + 2.0
        started = None if status == "queued" else created + 0.5
        yield (
            f"{index:012d}-{uuid.uuid4().hex[:8]}", "diag.noop", "processing", 3, status, rank,
            100.0 if status == "succeeded" else None, 0, 0 if status == "queued" else 1,
            None if status == "queued" else "bench-1@host", json.dumps({"i": index}),
            created, started, finished, finished or created, index,
        )  # fmt: skip


def bulk_load(store: JobStore, count: int) -> float:
    """Insert ``count`` job rows directly (indexes rebuilt after); return seconds taken."""
    began = time.perf_counter()
    indexes = list(JobRow.__table__.indexes)
    with store.engine.begin() as connection:
        for index in indexes:
            index.drop(connection)
    now = time.time()
    if store.dialect == "sqlite":
        path = str(store.engine.url.database)
        with sqlite3.connect(path) as raw:
            marks = ",".join("?" * len(COLUMNS))
            raw.executemany(
                f"INSERT INTO jobs ({','.join(COLUMNS)}) VALUES ({marks})", _rows(count, now)
            )
    else:
        raw_connection = store.engine.raw_connection()
        try:
            cursor = raw_connection.cursor()
            with cursor.copy(f"COPY jobs ({','.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in _rows(count, now):
                    copy.write_row(row)
            raw_connection.commit()
        finally:
            raw_connection.close()
    with store.engine.begin() as connection:
        for index in indexes:
            index.create(connection)
        connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - began


def first_page_ms(store: JobStore, runs: int = 20) -> tuple[float, float, int]:
    """(median ms, worst ms, rows on the page) of the first page of failed jobs."""
    store.list_jobs(status="failed", limit=50)
    timings = []
    page: list[object] = []
    for _ in range(runs):
        began = time.perf_counter()
        page, _cursor = store.list_jobs(status="failed", limit=50)
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings), max(timings), len(page)


def main() -> None:
    """Parse the arguments, run every measurement, print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="lifecycles for throughput")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the list query")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    table = Table(
        "back end", "events", "recorder events/s", "rows", "bulk load", "first page median",
        "first page worst", "page size",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with embedded_broker(tmp / "broker") as broker_url:
            for backend in args.backends.split(","):
                with database(backend, tmp) as url:
                    settings = Settings(redis_url=broker_url, home=tmp, database_url=url)
                    store = open_store(settings)
                    store.upgrade()
                    events, seconds = recorder_throughput(store, broker_url, args.jobs)
                    console.print(f"{backend}: {events} events recorded in {seconds:.2f}s")
                with database(backend, tmp) as url:
                    store = open_store(settings.model_copy(update={"database_url": url}))
                    store.upgrade()
                    load_s = bulk_load(store, args.rows)
                    median, worst, size = first_page_ms(store)
                    console.print(f"{backend}: {args.rows} rows loaded in {load_s:.1f}s")
                    store.close()
                table.add_row(
                    backend, str(events), f"{events / seconds:,.0f}", f"{args.rows:,}",
                    f"{load_s:.1f}s", f"{median:.2f} ms", f"{worst:.2f} ms", str(size),
                )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
