"""A job whose worker died under it is found stalled, re-queued as its next attempt, and runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from conveyor import Conveyor, JobContext, Settings, keys
from conveyor.engine.message import message_body
from conveyor.events import new_event
from conveyor.middleware import default_middleware
from conveyor.middleware.retries import Retries
from conveyor.monitor.stalled import handle_stalled
from conveyor.store import open_store
from conveyor.store.recorder import Recorder
from conveyor.testing import WorkerProcess, wait_until
from tests.periodic.apps import TickInput, build


def test_a_stalled_job_is_detected_requeued_and_runs_again(
    broker_url: str, redis_client: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'jobs.db'}", "heartbeat_s": 1.0}
    )
    app = build(configured)
    store = open_store(configured)
    store.upgrade()
    recorder = Recorder(store, app.redis, consumer="test")
    env = {"CONVEYOR_HEARTBEAT_S": "1"}
    first = WorkerProcess(
        broker_url, app="tests.periodic.apps:app", log_path=tmp_path / "w1.log", env=env
    )
    try:
        with first:
            job = app.submit("test.hang", {}, queue="processing")
            wait_until(lambda: job.state().status == "started", timeout=60, what="job started")
            first.kill()  # main process and pool child: nobody will report on the job

        def stalled() -> list[str]:
            recorder.drain()
            report = handle_stalled(app, store, threshold_s=2.0, policy="report")
            return [j["id"] for j in report.jobs]

        assert wait_until(stalled, timeout=30, what="the job reported stalled") == [job.id]
        report = handle_stalled(app, store, threshold_s=2.0, policy="requeue")
        assert report.requeued == [job.id] and report.failed == []
        # A second detector (the API's, the scheduled job's) does not act twice.
        assert handle_stalled(app, store, threshold_s=2.0).requeued == []
        state = job.state()
        assert state.status == "retrying"
        assert state.error is not None and state.error.type == "JobStalled"

        second = WorkerProcess(
            broker_url, app="tests.periodic.apps:app", log_path=tmp_path / "w2.log", env=env
        )
        with second:
            final = job.wait(timeout=60)
        assert (final.status, final.attempt, final.result) == ("succeeded", 1, 1)
        recorder.drain()
        record = store.get_job(job.id)
        assert record is not None and record.status == "succeeded"
        assert redis_client.exists(keys.stalled_claim(job.id, 0))
    finally:
        first.close()
        store.close()


def test_the_fail_policy_fails_and_dead_letters_a_stalled_job(
    redis_client: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'jobs.db'}", "heartbeat_s": 1.0}
    )
    app = build(configured)
    store = open_store(configured)
    store.upgrade()
    try:
        job = app.submit("test.hang", {}, queue="processing")
        # A worker that never heartbeats started it and was never heard of again.
        started = new_event(
            "started", job.id, "test.hang", "processing", attempt=0, worker="ghost@nowhere"
        )
        app.event_writer().emit(started, fields={"worker": "ghost@nowhere"}, mode="start")
        Recorder(store, app.redis, consumer="test").drain()
        failed = wait_until(
            lambda: handle_stalled(app, store, threshold_s=1.0, policy="fail").failed,
            timeout=20,
            what="the stalled job failed",
        )
        assert failed == [job.id]
        assert job.state().status == "failed"
        Recorder(store, app.redis, consumer="test").drain()
        letter = store.get_dead_letter(job.id)
        assert letter is not None and letter.error_type == "JobStalled"
    finally:
        store.close()


def _ghost_start(app: Conveyor, store: Any, job_id: str, job_type: str) -> None:
    """Record ``job_id`` started by a worker that never heartbeats, its message consumed."""
    for name in redis.Redis.from_url(app.broker_url).scan_iter(match="processing*"):
        app.redis.delete(name)  # the ghost worker took the message with it
    started = new_event("started", job_id, job_type, "processing", attempt=0, worker="ghost@x")
    app.event_writer().emit(started, fields={"worker": "ghost@x"}, mode="start")
    Recorder(store, app.redis, consumer="test").drain()


def _wait_stalled(app: Conveyor, store: Any) -> None:
    wait_until(
        lambda: handle_stalled(app, store, threshold_s=0.01, policy="report").jobs,
        timeout=10,
        what="the job reported stalled",
    )


def _hang(ctx: JobContext, params: TickInput) -> None:
    """Never run here: its start is faked."""


def _requeued_messages(client: redis.Redis) -> list[dict[str, Any]]:
    return [
        json.loads(raw)
        for name in client.scan_iter(match="processing*")
        if client.type(name) == b"list"
        for raw in client.lrange(name, 0, -1)
    ]


def test_a_requeued_stalled_job_keeps_its_own_time_limits(
    redis_client: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'jobs.db'}"})
    app = build(configured)
    store = open_store(configured)
    store.upgrade()
    try:
        job = app.submit("test.hang", {}, queue="processing", time_limit=30, soft_time_limit=20)
        _ghost_start(app, store, job.id, "test.hang")
        _wait_stalled(app, store)
        assert handle_stalled(app, store, threshold_s=0.01, policy="requeue").requeued == [job.id]
        (message,) = _requeued_messages(redis_client)
        assert message["headers"]["id"] == job.id
        assert message["headers"]["timelimit"] == [30.0, 20.0]
        meta = message_body(message)[1]["meta"]
        assert (meta["attempt"], meta["time_limit"], meta["soft_time_limit"]) == (1, 30.0, 20.0)
    finally:
        store.close()


def test_without_the_retries_middleware_a_stalled_job_fails_instead_of_requeueing(
    redis_client: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'jobs.db'}"})
    app = Conveyor(
        configured,
        packs=(),
        default_middleware=[m for m in default_middleware() if not isinstance(m, Retries)],
    )
    app.job("t.hang")(_hang)  # no retries= (it would need Retries): CONVEYOR_DEFAULT_RETRIES is 3
    store = open_store(configured)
    store.upgrade()
    try:
        job = app.submit("t.hang", {}, queue="processing")
        _ghost_start(app, store, job.id, "t.hang")
        _wait_stalled(app, store)
        report = handle_stalled(app, store, threshold_s=0.01, policy="requeue")
        assert report.requeued == [] and report.failed == [job.id]
        assert job.state().status == "failed" and _requeued_messages(redis_client) == []
    finally:
        store.close()
