"""The recorder under faults: killed mid-batch, and the database down under load."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from tests.store.conftest import emit_jobs, pg_admin, pg_url, wait_recorded
from tests.store.test_recorder import assert_complete, ids, running

from conveyor import Settings, keys
from conveyor.events import EventWriter
from conveyor.store import JobStore, open_store
from conveyor.store.recorder import Recorder, recorder_lag
from conveyor.testing import wait_until


def recorder_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``conveyor recorder`` as a real subprocess, in its own session."""
    env = dict(
        os.environ,
        REDIS_URL=str(settings.redis_url),
        CONVEYOR_DATABASE_URL=str(settings.database_url),
        CONVEYOR_HOME=str(settings.home),
        CONVEYOR_RECORDER_BATCH_SIZE="1000",
        CONVEYOR_RECORDER_CLAIM_IDLE_S="0.5",
        CONVEYOR_RECORDER_POLL_S="0.2",
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", "recorder"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def recorded(client: redis.Redis) -> int:
    return int(client.hget(keys.RECORDER_STATS, "recorded") or 0)


def test_a_recorder_killed_mid_batch_and_restarted_leaves_the_store_complete(
    store: JobStore,
    store_settings: Settings,
    writer: EventWriter,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    jobs = 3000
    total = emit_jobs(writer, ids(jobs), steps=2, fail_every=10)
    log = tmp_path / "recorder.log"
    first = recorder_process(store_settings, log)
    try:

        def mid_batch() -> bool:
            assert first.poll() is None, log.read_text()
            lag = recorder_lag(redis_client)
            return recorded(redis_client) >= 2000 and lag.pending > 0

        def stopped_mid_batch() -> bool:
            # Freeze the recorder, then look: a batch that ended between seeing it in
            # flight and the freeze would leave nothing pending, so let it go on and
            # try again.
            if not mid_batch():
                return False
            os.killpg(first.pid, signal.SIGSTOP)
            if recorder_lag(redis_client).pending > 0:
                return True
            os.killpg(first.pid, signal.SIGCONT)
            return False

        wait_until(
            stopped_mid_batch, timeout=60, interval=0.005, what="the recorder to be mid-batch"
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    stranded = recorder_lag(redis_client)
    assert stranded.pending > 0, "killed between batches, not in the middle of one"
    done_before = recorded(redis_client)
    assert done_before < total

    second = recorder_process(store_settings, log)
    try:
        wait_recorded(redis_client, timeout=90)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()
    assert "claimed" in log.read_text()
    assert_complete(store, jobs, failed=jobs // 10)
    # Each event acknowledged (and counted) once, after the commit that holds it; the
    # stranded batch was merged again by the second recorder, changing nothing twice.
    assert recorded(redis_client) == total


@contextmanager
def sqlite_locked(path: str) -> Iterator[None]:
    """Another process-like writer holds SQLite's write lock for the block."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        blocker.execute("COMMIT")
        blocker.close()


@contextmanager
def postgres_down_for(role: str) -> Iterator[None]:
    """The server refuses ``role``'s logins and ends its sessions for the block."""
    pg_admin(f"ALTER ROLE {role} NOLOGIN")
    pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", role)
    try:
        yield
    finally:
        pg_admin(f"ALTER ROLE {role} LOGIN")


def test_the_database_down_under_load_loses_nothing(
    store: JobStore,
    store_settings: Settings,
    writer: EventWriter,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.recorder")
    url = str(store_settings.database_url)
    role = None
    if url.startswith("postgresql"):
        schema = url.rsplit("%3D", 1)[1]
        role = f"conveyor_t_{uuid.uuid4().hex[:10]}"
        pg_admin(f"CREATE ROLE {role} LOGIN")
        pg_admin(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        pg_admin(f"GRANT ALL ON ALL TABLES IN SCHEMA {schema} TO {role}")
        recorder_store = open_store(
            store_settings.model_copy(update={"database_url": pg_url(schema, role)})
        )
        outage = postgres_down_for(role)
    else:
        recorder_store = store
        outage = sqlite_locked(url.removeprefix("sqlite:///"))
    recorder = Recorder(recorder_store, redis_client, batch_size=100)
    try:
        with running(recorder):
            emit_jobs(writer, ids(100, prefix="before"), steps=1)
            wait_recorded(redis_client)
            with outage:
                emit_jobs(writer, ids(100, prefix="during"), steps=1)
                wait_until(lambda: recorder.stats.outages == 1, timeout=30, what="the outage")
                # Keep the database down a while longer, under more load.
                for chunk in range(4):
                    emit_jobs(writer, ids(50, prefix=f"down-{chunk}"), steps=1)
                    time.sleep(0.5)
                assert recorder_lag(redis_client).backlog
            emit_jobs(writer, ids(100, prefix="after"), steps=1)
            wait_recorded(redis_client, timeout=60)
        assert recorder.stats.outages == 1
        assert store.count_by_status() == {"succeeded": 500}
        lines = [r.getMessage() for r in caplog.records if r.name == "conveyor.recorder"]
        down = [line for line in lines if "unreachable" in line]
        assert len(down) == 1 and "retrying with backoff" in down[0], lines
        assert len([line for line in lines if "reachable again" in line]) == 1
    finally:
        recorder_store.close()
        if role is not None:
            pg_admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", role
            )
            pg_admin(f"DROP OWNED BY {role}")
            pg_admin(f"DROP ROLE {role}")
