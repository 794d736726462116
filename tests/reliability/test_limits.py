"""Time limits: per-type and per-submission limits reach Celery; the hard-limit failure path."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from pydantic import BaseModel

from conveyor import Conveyor, keys
from conveyor.errors import InvalidSubmission
from conveyor.events import new_event
from conveyor.jobs import JobContext, job_tempdir_root, remove_job_tempdirs
from conveyor.timelimits import resolve_limits
from conveyor.worker.deadletter import DEAD_LETTER_TASK
from conveyor.worker.executor import record_hard_time_limit


class Empty(BaseModel):
    pass


class SlowInput(BaseModel):
    seconds: float


def _noop(ctx: JobContext, params: Empty) -> None:
    pass


def _slow(ctx: JobContext, params: SlowInput) -> None:
    pass


def test_per_type_limits_reach_the_celery_task(app: Conveyor) -> None:
    app.job("t.limited", time_limit=30, soft_time_limit=20)(_noop)
    app.job("t.unlimited")(_noop)
    tasks = app.celery.tasks
    assert tasks["t.limited"].time_limit == 30 and tasks["t.limited"].soft_time_limit == 20
    # A type without limits runs under CELERY_TASK_TIME_LIMIT / CELERY_TASK_SOFT_TIME_LIMIT.
    assert tasks["t.unlimited"].time_limit == 3600 and tasks["t.unlimited"].soft_time_limit == 3300
    assert DEAD_LETTER_TASK in tasks


def test_resolve_limits(app: Conveyor) -> None:
    app.job("t.limited", time_limit=30, soft_time_limit=20)(_noop)
    limited, diag = app.definition("t.limited"), app.definition("diag.sleep")
    settings = app.settings
    assert resolve_limits(limited, settings, None, None) == (None, None)
    # A longer hard limit alone keeps the type's 10 s margin for the soft one.
    assert resolve_limits(limited, settings, 120, None) == (120.0, 110.0)
    # …but never less than half the hard limit.
    assert resolve_limits(limited, settings, 12, None) == (12.0, 6.0)
    assert resolve_limits(diag, settings, 10, 4) == (10.0, 4.0)
    assert resolve_limits(diag, settings, None, 100) == (3600.0, 100.0)
    with pytest.raises(InvalidSubmission, match="below time_limit"):
        resolve_limits(limited, settings, 10, 10)
    with pytest.raises(InvalidSubmission, match="> 0"):
        resolve_limits(limited, settings, 0, None)
    with pytest.raises(InvalidSubmission, match="visibility timeout"):
        resolve_limits(limited, settings, 500, None, visibility_timeout_s=400)


def _messages(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    found = []
    for name in client.scan_iter(match=f"{queue}*"):
        if client.type(name) == b"list":
            found += [json.loads(raw) for raw in client.lrange(name, 0, -1)]
    return found


def test_a_submission_can_override_the_limits_and_they_reach_the_message(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.sleep", {"seconds": 1}, time_limit=20, soft_time_limit=15)
    plain = app.submit("diag.sleep", {"seconds": 1})
    by_id = {m["headers"]["id"]: m for m in _messages(redis_client, "processing")}
    assert by_id[job.id]["headers"]["timelimit"] == [20.0, 15.0]
    assert by_id[plain.id]["headers"]["timelimit"] == [None, None]
    with pytest.raises(InvalidSubmission, match="visibility timeout"):
        app.submit("diag.sleep", {}, time_limit=10**6)


def test_tempdir_is_removed_at_the_end_of_its_block_whatever_happens() -> None:
    ctx = JobContext(cast(Any, SimpleNamespace(job_id="tempdir-test-1")))
    with pytest.raises(SoftTimeLimitExceeded), ctx.tempdir() as path:
        (path / "partial.wav").write_bytes(b"x")
        raise SoftTimeLimitExceeded()
    assert not path.exists()
    kept = ctx.tempdir(prefix="render-")
    assert Path(kept).name.startswith("render-") and kept.path.is_dir()
    assert kept.path.parent == job_tempdir_root("tempdir-test-1")
    remove_job_tempdirs("tempdir-test-1")  # what the worker does when the job ends
    assert not job_tempdir_root("tempdir-test-1").exists()


def _started(app: Conveyor, job_type: str, attempt: int) -> tuple[str, dict[str, Any]]:
    """A job as a worker leaves it when its pool process is killed mid-run."""
    job = app.submit(job_type, {"seconds": 5})
    meta = {"attempt": attempt, "queue": "processing", "priority": 3, "created_at": time.time()}
    app.event_writer().emit(
        new_event("started", job.id, job_type, "processing", attempt=attempt, worker="w-1@h"),
        fields={"worker": "w-1@h", "started_at": time.time()},
        mode="start",
    )
    return job.id, meta


def test_hard_limit_is_a_failed_attempt_retried_then_dead_lettered(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    app.job("t.slow", retries=1, backoff=(5,), time_limit=2, soft_time_limit=1)(_slow)
    definition = app.definition("t.slow")
    job_id, meta = _started(app, "t.slow", attempt=0)
    job_tempdir_root(job_id).mkdir(parents=True)
    record_hard_time_limit(app, definition, job_id, {"seconds": 5}, meta, TimeLimitExceeded(2.0))
    state = app.get_job(job_id).state()
    assert state.status == "retrying" and state.attempt == 0 and state.worker == "w-1@h"
    assert state.error is not None and state.error.type == "TimeLimitExceeded"
    assert "hard time limit (2s) exceeded" in state.error.message
    assert redis_client.zscore(keys.DELAYED, job_id) is not None
    assert not job_tempdir_root(job_id).exists()

    record_hard_time_limit(
        app, definition, job_id, {"seconds": 5}, dict(meta, attempt=1), TimeLimitExceeded(2.0)
    )
    state = app.get_job(job_id).state()
    assert state.status == "failed" and state.attempt == 1
    failed = [
        json.loads(fields[b"e"])
        for _, fields in redis_client.xrange(keys.EVENTS)
        if json.loads(fields[b"e"])["type"] == "failed"
    ]
    assert len(failed) == 1
    assert failed[0]["error_type"] == "TimeLimitExceeded" and failed[0]["payload"] == {"seconds": 5}
    assert failed[0]["deliveries"] == 1 and failed[0]["worker"] == "w-1@h"
    letters = [
        m
        for m in _messages(redis_client, "dead-letter")
        if m["headers"]["task"] == DEAD_LETTER_TASK
    ]
    assert len(letters) == 1
    assert letters[0]["headers"]["id"] == f"dead-letter-{job_id}"
