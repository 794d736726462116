"""Jobs through real workers and the ``conveyor`` command: success, delay, refusals, the CLI.

The policies of one delivery (progress, retries, failures, cancellation) run in
process in ``tests/unit/worker/test_executor.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from conveyor import Conveyor, Settings, keys
from conveyor.engine.transport import TRANSPORT_PATH
from conveyor.testing import WorkerProcess, wait_until
from tests.cli import run_conveyor


def test_python_client_submit_to_succeeded(app: Conveyor, worker: WorkerProcess) -> None:
    job = app.submit("diag.noop", {})
    state = job.wait(timeout=30)
    assert state.status == "succeeded"
    assert state.deliveries == 1 and state.attempt == 0
    assert state.worker is not None and state.worker.startswith("processing-")
    assert state.wait_s is not None and state.run_s is not None


def test_delay_is_respected(app: Conveyor, worker: WorkerProcess) -> None:
    submitted = time.time()
    job = app.submit("diag.noop", {}, delay=1.5)
    assert job.state().status == "scheduled"
    state = job.wait(timeout=30)
    assert state.status == "succeeded"
    assert state.started_at is not None and state.started_at >= submitted + 1.5


def test_pickled_message_is_refused_not_run(
    broker_url: str, worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    sender = Celery("intruder", broker=broker_url, set_as_current=False)
    sender.conf.update(
        broker_transport=TRANSPORT_PATH,
        task_serializer="pickle",
        accept_content=["pickle", "json"],
    )
    sender.send_task(
        "diag.noop", args=[{}], task_id="pickled-job", queue="processing", routing_key="processing"
    )
    wait_until(
        lambda: "Refusing to deserialize untrusted content of type pickle" in worker.log(),
        timeout=30,
        what="the worker to refuse the pickled message",
    )
    assert "Task diag.noop[pickled-job] received" not in worker.log()
    assert redis_client.hgetall(keys.job("pickled-job")) == {}


def run_cli(broker_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` as a user runs it: a fresh interpreter."""
    env = dict(os.environ, REDIS_URL=broker_url, COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def in_process(broker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` in this process (the same commands and exit codes, no start-up)."""
    return run_conveyor(*args, env={"REDIS_URL": broker_url, "COLUMNS": "120"})


def test_cli_submit_wait_shows_progress_and_exits_zero(
    broker_url: str, worker: WorkerProcess
) -> None:
    done = run_cli(
        broker_url, "submit", "diag.sleep", "--payload", '{"seconds": 0.5, "steps": 5}', "--wait"
    )
    assert done.returncode == 0, done.stderr
    assert "step 5/5" in done.stdout and "succeeded" in done.stdout


def test_cli_submit_wait_exits_non_zero_on_failure(broker_url: str, worker: WorkerProcess) -> None:
    done = in_process(
        broker_url, "submit", "diag.flaky", "fail_times=1", "permanent=true", "--wait"
    )
    assert done.returncode == 1
    assert "failed" in done.stdout and "PermanentError" in done.stdout


def test_cli_status_and_queues_as_json(broker_url: str, worker: WorkerProcess) -> None:
    submitted = in_process(broker_url, "submit", "diag.noop", "--json", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    status = json.loads(in_process(broker_url, "status", job_id, "--json").stdout)
    assert status["status"] == "succeeded" and status["run_s"] is not None
    queues = json.loads(in_process(broker_url, "queues", "--json").stdout)
    assert [q["name"] for q in queues["queues"]][:2] == ["critical", "generation-high"]


def test_cli_bad_input_names_the_problem(broker_url: str) -> None:
    unknown = in_process(broker_url, "submit", "diag.nope")
    assert unknown.returncode == 2 and "known types: diag.flaky" in unknown.stderr
    invalid = in_process(broker_url, "submit", "diag.sleep", "seconds=soon")
    assert invalid.returncode == 2 and "seconds" in invalid.stderr
    bad_json = in_process(broker_url, "submit", "diag.noop", "--payload", "{oops")
    assert bad_json.returncode == 2 and "--payload" in bad_json.stderr
    priority = in_process(broker_url, "submit", "diag.noop", "--priority", "11")
    assert priority.returncode == 2 and "--priority" in priority.stderr
    queue = in_process(broker_url, "submit", "diag.noop", "--queue", "nope")
    assert queue.returncode == 2 and "--queue" in queue.stderr


def test_cli_watch_follows_to_the_end(
    app: Conveyor, broker_url: str, worker: WorkerProcess
) -> None:
    job = app.submit("diag.sleep", {"seconds": 0.4, "steps": 4})
    watched = in_process(broker_url, "watch", job.id)
    assert watched.returncode == 0, watched.stderr
    assert "step 4/4" in watched.stdout
    failing = app.submit("diag.flaky", {"fail_times": 1, "permanent": True})
    assert in_process(broker_url, "watch", failing.id).returncode == 1


def test_cli_cancel_then_watch_exits_three(app: Conveyor, broker_url: str) -> None:
    job = app.submit("diag.noop", {}, delay=600)
    assert in_process(broker_url, "cancel", job.id).returncode == 0
    assert in_process(broker_url, "watch", job.id).returncode == 3
    assert in_process(broker_url, "cancel", job.id).returncode == 1


def test_cli_watch_of_an_unknown_job_says_so_without_a_bar(broker_url: str) -> None:
    unknown = in_process(broker_url, "watch", "no-such-job")
    assert unknown.returncode == 2 and "no job no-such-job" in unknown.stderr
    assert "queued" not in unknown.stdout


def test_cli_doctor_reports_the_broker(broker_url: str) -> None:
    done = in_process(broker_url, "doctor", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["broker"]["ok"] and "valkey" in checks["broker"]["detail"]
    assert "***" in checks["broker"]["detail"]


def test_cli_doctor_creates_no_job_store(broker_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        k: v for k, v in os.environ.items() if k not in ("CONVEYOR_DATABASE_URL", "CONVEYOR_HOME")
    }
    env.update(REDIS_URL=broker_url, CONVEYOR_HOME=str(home))
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["job store"]["ok"] and "not created yet" in checks["job store"]["detail"]
    assert not (home / "jobs.db").exists()


def test_cli_broker_down_fails_fast_with_the_masked_url(tmp_path: Path) -> None:
    url = "redis://:hunter2@127.0.0.1:1/0"
    for args in (["submit", "diag.noop"], ["queues"], ["worker"]):
        done = run_cli(url, *args, timeout=60)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "127.0.0.1:1" in done.stderr and "hunter2" not in done.stderr


def test_delay_longer_than_the_visibility_timeout_runs_once(
    app: Conveyor, broker_url: str, tmp_path: Path
) -> None:
    # A 2 s hard limit allows a 3 s visibility timeout; the delay is longer than that.
    limits = {
        "CELERY_TASK_SOFT_TIME_LIMIT": "1",
        "CELERY_TASK_TIME_LIMIT": "2",
        "CONVEYOR_VISIBILITY_TIMEOUT_S": "3",
    }
    job = app.submit("diag.noop", {}, delay=7)
    with WorkerProcess(broker_url, concurrency=1, log_path=tmp_path / "w.log", env=limits):
        state = job.wait(timeout=60)
    assert state.status == "succeeded"
    assert state.deliveries == 1
    assert state.due_at is not None and state.started_at is not None
    assert state.started_at >= state.due_at


@pytest.mark.parametrize("pool", ["prefork", "procs"])
def test_profile_time_limits_kill_a_job_that_runs_longer(
    broker_url: str, settings: Settings, tmp_path: Path, worker_log: Path, pool: str
) -> None:
    """A profile's limits from ``conveyor.toml`` reach a real worker; a submission's own win.

    The profile has a queue of its own: the module's shared worker consumes processing.
    Both pools that enforce limits do (prefork through billiard, procs through its
    supervisor).
    """
    from tests.e2e.limits_app import APP, HANG, make_app

    config = tmp_path / "conveyor.toml"
    config.write_text(
        "[queues.limited]\npriority = 3\n\n"
        '[profiles.limited]\nqueues = ["limited"]\ntime_limit = 2\nsoft_time_limit = 1\n'
    )
    app = make_app(settings.model_copy(update={"config_file": config}))
    env = {"CONVEYOR_CONFIG": str(config), "CONVEYOR_DEFAULT_RETRIES": "0"}
    with WorkerProcess(
        broker_url,
        profile="limited",
        concurrency=2,
        pool=pool,
        app=APP,
        log_path=worker_log,
        env=env,
    ) as w:
        wait_until(
            lambda: "time limits 1s soft / 2s hard" in w.log(), timeout=10, what="ready line"
        )
        started = time.monotonic()
        killed = app.submit(HANG, {"seconds": 5}, queue="limited")
        # A submission's limits win over the worker's profile.
        outlived = app.submit(
            HANG, {"seconds": 3}, queue="limited", time_limit=8, soft_time_limit=6
        )
        state = killed.wait(timeout=20)
        assert state.status == "failed" and state.attempt == 0
        assert state.error is not None and state.error.type == "TimeLimitExceeded"
        assert "hard time limit (2s)" in (state.error.message or "")
        assert state.stage == "soft limit caught"
        assert time.monotonic() - started < 4.5
        other = outlived.wait(timeout=20)
        assert other.status == "succeeded", other.error
        assert other.result == {"slept_s": 3} and other.stage != "soft limit caught"
