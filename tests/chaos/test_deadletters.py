"""Chaos scenarios 3 and 4 of the reliability issue, on real workers and a real webhook.

3. A job that exceeds its hard time limit: the pool process is killed and replaced,
   the job is retried, then dead-lettered; a replay with a longer limit succeeds.
4. ``diag.flaky`` failing more often than its retries: exactly ``retries + 1``
   attempts, one dead letter, one webhook call to a local HTTP server.

Workers: one job worker (prefork, 2 processes, queues processing and critical)
and one monitoring worker (threads) that consumes ``dead-letter`` and sends the
alerts. The recorder runs in the test process (``drain``) on a fresh SQLite store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor import Conveyor, Settings, keys
from conveyor.client import deadletters
from conveyor.store import JobStore, open_store
from conveyor.store.recorder import Recorder
from conveyor.testing import WorkerProcess, wait_until
from tests.chaos.reliability_app import HANG, make_app
from tests.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.e2e

APP = "tests.chaos.reliability_app:app"
FAST = {
    "CONVEYOR_DEFAULT_BACKOFF_S": "0.2",
    "CONVEYOR_DELAYED_POLL_S": "0.1",
    "CONVEYOR_HEARTBEAT_S": "1",
}


@pytest.fixture(scope="module")
def hook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def dlq_workers(
    broker_url: str, hook: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerProcess, WorkerProcess]]:
    logs = tmp_path_factory.mktemp("dlq-workers")
    env = dict(FAST, CONVEYOR_ALERT_WEBHOOK_URL=hook.url)
    jobs = WorkerProcess(
        broker_url,
        profile="processing",
        queues=["critical", "processing"],
        concurrency=2,
        app=APP,
        log_path=logs / "jobs.log",
        env=env,
    )
    monitoring = WorkerProcess(
        broker_url, profile="monitoring", app=APP, log_path=logs / "monitoring.log", env=env
    )
    with jobs, monitoring:
        yield jobs, monitoring


@pytest.fixture
def chaos_app(settings: Settings, redis_client: redis.Redis) -> Conveyor:
    return make_app(settings)


@pytest.fixture
def store(settings: Settings) -> Iterator[JobStore]:
    opened = open_store(settings)
    opened.upgrade()
    yield opened
    opened.close()


def events_of(client: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    found = []
    for _, fields in client.xrange(keys.EVENTS):
        event = json.loads(fields[b"e"])
        if event.get("job_id") == job_id:
            found.append(event)
    return found


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events if e["type"] != "progress"]


def attempts(events: list[dict[str, Any]]) -> list[str]:
    """What the workers did (a retry's ``queued`` is left out: the mover may write it
    after a fast worker's ``started``, and then it is refused as stale)."""
    return [kind for kind in kinds(events) if kind not in ("queued", "scheduled")]


def test_hard_time_limit_retried_then_dead_lettered_then_replayed_with_more_time(
    chaos_app: Conveyor,
    dlq_workers: tuple[WorkerProcess, WorkerProcess],
    store: JobStore,
    redis_client: redis.Redis,
) -> None:
    jobs, _ = dlq_workers
    main_pid = jobs.pid
    began = time.monotonic()
    job = chaos_app.submit(HANG, {"seconds": 3})
    state = job.wait(timeout=60)
    died_after = time.monotonic() - began

    # Killed at the hard limit twice (attempt 0 and its one retry), then failed.
    assert state.status == "failed" and state.attempt == 1
    assert state.error is not None and state.error.type == "TimeLimitExceeded"
    assert "hard time limit (2s) exceeded" in state.error.message
    history = events_of(redis_client, job.id)
    assert attempts(history) == ["started", "retrying", "started", "failed"]
    assert sum(e.get("stage") == "soft limit caught" for e in history) == 2
    wait_until(lambda: jobs.log().count("Hard time limit (2") >= 2, timeout=10, what="Celery's log")
    # The worker survived; its pool replaced the killed process; the tempdirs are gone.
    assert jobs.process is not None and jobs.process.poll() is None and jobs.pid == main_pid
    tempdirs = {e["message"] for e in history if e.get("stage") == "tempdir"}
    assert len(tempdirs) == 2 and not any(Path(p).exists() for p in tempdirs)

    recorder = Recorder(store, chaos_app.redis, consumer="test")
    recorder.drain()
    dead = deadletters.get_dead_letter(chaos_app, job.id, store=store)
    assert dead.error_type == "TimeLimitExceeded" and dead.attempt == 1
    assert dead.payload == {"seconds": 3.0, "catch_soft": True} and dead.worker == jobs.name

    began = time.monotonic()
    replayed = deadletters.replay(chaos_app, job.id, time_limit=10, store=store)
    done = replayed.wait(timeout=60)
    replay_s = time.monotonic() - began
    assert done.status == "succeeded" and done.result == {"slept_s": 3.0}
    assert done.replay_of == job.id and done.attempt == 0 and done.worker == jobs.name
    recorder.drain()
    assert deadletters.get_dead_letter(chaos_app, job.id, store=store).replayed_as == replayed.id
    print(
        f"\nhard limit 2 s, 1 retry: dead-lettered after {died_after:.1f}s; "
        f"replay with time_limit=10 succeeded after {replay_s:.1f}s"
    )


def test_an_uncaught_soft_limit_fails_the_attempt_and_still_removes_the_tempdir(
    chaos_app: Conveyor,
    dlq_workers: tuple[WorkerProcess, WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    jobs, _ = dlq_workers
    job = chaos_app.submit(HANG, {"seconds": 3, "catch_soft": False})
    state = job.wait(timeout=30)
    assert state.status == "failed" and state.attempt == 1
    assert state.error is not None and state.error.type == "SoftTimeLimitExceeded"
    assert state.run_s is not None and state.run_s < 2, "stopped at the soft limit, not the hard"
    history = events_of(redis_client, job.id)
    assert attempts(history) == ["started", "retrying", "started", "failed"]
    tempdirs = {e["message"] for e in history if e.get("stage") == "tempdir"}
    assert len(tempdirs) == 2 and not any(Path(p).exists() for p in tempdirs)
    assert f"Hard time limit (2s) exceeded for {HANG}[{job.id}]" not in jobs.log()


def test_flaky_past_its_retries_makes_one_dead_letter_and_one_webhook_call(
    chaos_app: Conveyor,
    dlq_workers: tuple[WorkerProcess, WorkerProcess],
    hook: WebhookReceiver,
    store: JobStore,
    redis_client: redis.Redis,
) -> None:
    _, monitoring = dlq_workers
    retries = chaos_app.retries_for(chaos_app.definition("diag.flaky"))
    assert retries == 5
    began = time.monotonic()
    job = chaos_app.submit("diag.flaky", {"fail_times": retries + 1}, queue="critical")
    quiet = chaos_app.submit("diag.flaky", {"fail_times": 1, "permanent": True})
    state = job.wait(timeout=60)
    died_after = time.monotonic() - began
    assert quiet.wait(timeout=30).status == "failed"

    assert state.status == "failed" and state.attempt == retries
    history = kinds(events_of(redis_client, job.id))
    assert history.count("started") == retries + 1
    assert history.count("retrying") == retries and history.count("failed") == 1

    # The alert: one POST for the critical job, none for the one on processing.
    wait_until(lambda: hook.delivered(job.id), timeout=30, what="the webhook call")
    assert state.finished_at is not None
    alert_s = time.time() - state.finished_at
    wait_until(
        lambda: f"job {job.id}: alert delivered" in monitoring.log(),
        timeout=30,
        what="the monitoring worker to finish the alert",
    )
    wait_until(
        lambda: f"dead letter: diag.flaky job {quiet.id}" in monitoring.log(),
        timeout=30,
        what="the monitoring worker to file the quiet dead letter",
    )
    [body] = hook.delivered(job.id)
    assert len(hook.received(job.id)) == 1 and hook.received(quiet.id) == []
    assert body["event"] == "job.dead_lettered" and body["queue"] == "critical"
    assert body["attempt"] == retries and body["error_type"] == "TransientError"

    Recorder(store, chaos_app.redis, consumer="test").drain()
    letters = deadletters.list_dead_letters(chaos_app, type="diag.flaky", store=store)
    assert sorted(d.job_id for d in letters) == sorted([job.id, quiet.id])
    dead = deadletters.get_dead_letter(chaos_app, job.id, store=store)
    assert dead.attempt == retries and dead.queue == "critical"
    assert dead.payload == {"fail_times": retries + 1, "permanent": False}
    print(
        f"\ndiag.flaky, {retries} retries: {retries + 1} attempts, failed after "
        f"{died_after:.1f}s, 1 dead letter, 1 webhook call (received at most {alert_s:.2f}s "
        "after the failure)"
    )


def test_a_failing_webhook_is_retried_until_delivered(
    chaos_app: Conveyor,
    dlq_workers: tuple[WorkerProcess, WorkerProcess],
    hook: WebhookReceiver,
) -> None:
    _, monitoring = dlq_workers
    with hook.lock:
        hook.statuses[:] = [503]
    job = chaos_app.submit("diag.flaky", {"fail_times": 1, "permanent": True}, queue="critical")
    assert job.wait(timeout=30).status == "failed"
    wait_until(lambda: hook.delivered(job.id), timeout=30, what="the retried alert")
    assert [r["status"] for r in hook.received(job.id)] == [503, 200]
    assert f"job {job.id}: alert failed" in monitoring.log()
