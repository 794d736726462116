"""The README's "Declaring jobs", run verbatim, beside the built-in workers on one queue.

A built-in worker (no ``CONVEYOR_APP``) and the user's own worker both consume
``generation``: the user's jobs must reach the user's worker, and fail with
``UnknownJobType`` and a dead letter once no live worker serves their type.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor import Conveyor
from conveyor.testing import WorkerProcess
from conveyor.topology import DEAD_LETTER

README = Path(__file__).resolve().parents[2] / "README.md"


def declaring_jobs_code() -> str:
    """The first Python block of the README's "Declaring jobs" section, as written."""
    text = README.read_text()
    section = text.split("## Declaring jobs", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Declaring jobs section has no python block"
    return match.group(1)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding the README's ``myproject/jobs.py``."""
    code = declaring_jobs_code()
    assert code.startswith("# myproject/jobs.py\n")
    package = tmp_path / "project" / "myproject"
    package.mkdir(parents=True)
    (package / "jobs.py").write_text(code)
    return package.parent


@pytest.fixture
def user_app(project: Path, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Conveyor:
    """The README's application, executed as written (its ``Conveyor()`` reads REDIS_URL)."""
    monkeypatch.setenv("REDIS_URL", broker_url)
    namespace: dict[str, Any] = {"__name__": "myproject.jobs"}
    exec(compile((project / "myproject" / "jobs.py").read_text(), "jobs.py", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, Conveyor)
    return app


def cli(
    broker_url: str, project: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` with the README's application, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "REDIS_"))}
    env.update(
        REDIS_URL=broker_url,
        CONVEYOR_APP="myproject.jobs:app",
        PYTHONPATH=str(project),
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_own_jobs_reach_their_worker_and_fail_clearly_without_one(
    broker_url: str, redis_client: redis.Redis, project: Path, user_app: Conveyor, tmp_path: Path
) -> None:
    builtin = WorkerProcess(
        broker_url, profile="generation", queues=["generation"], log_path=tmp_path / "builtin.log"
    )
    own = WorkerProcess(
        broker_url,
        profile="generation",
        queues=["generation"],
        app="myproject.jobs:app",
        env={"PYTHONPATH": str(project)},
        log_path=tmp_path / "own.log",
    )
    with builtin:
        with own:
            # The built-in worker takes some of these first: it must hand them back.
            jobs = [user_app.submit("audio.transcribe", {"url": f"u{i}"}) for i in range(6)]
            for job in jobs:
                state = job.wait(timeout=90)
                assert state.status == "succeeded", state
                assert state.result == {"words": 1234}
                assert state.worker == own.name
            assert "Received unregistered task" not in builtin.log()
            # With both idle on one queue, the built-in worker took (and returned) some.
            assert "handed back for" in builtin.log()
        # Only the built-in worker is left on the queue: the job fails, named and dead-lettered.
        warned = cli(broker_url, project, "submit", "audio.transcribe", "url=x", "--wait")
        assert warned.returncode == 1, warned.stdout + warned.stderr
        assert "no live worker serves audio.transcribe" in warned.stderr
        assert "UnknownJobType" in warned.stdout
        job_id = warned.stdout.split()[1]
        state = user_app.get_job(job_id).state()
        assert state.status == "failed"
        assert state.error is not None and state.error.type == "UnknownJobType"
        assert "no live worker serves audio.transcribe on queue generation" in (state.error.message)
        dead = [json.loads(m) for m in redis_client.lrange(DEAD_LETTER, 0, -1)]
        assert any(m["headers"]["id"] == f"dead-letter-{job_id}" for m in dead)


def test_submit_wait_gives_up_and_says_why(
    broker_url: str, redis_client: redis.Redis, project: Path
) -> None:
    # No worker consumes `batch`: the wait ends at --timeout (exit 4), saying why.
    done = cli(
        broker_url,
        project,
        "submit",
        "audio.transcribe",
        "url=x",
        "--queue",
        "batch",
        "--wait",
        "--timeout",
        "2",
    )
    assert done.returncode == 4, done.stdout + done.stderr
    reason = "no live worker serves audio.transcribe: none consumes queue batch"
    assert f"waiting: {reason}" in done.stderr
    assert "still queued" in done.stderr or "it is queued" in done.stderr
    assert "conveyor watch" in done.stderr
