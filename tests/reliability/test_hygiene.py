"""Worker hygiene from settings: pool processes are replaced after N jobs
(``CELERY_WORKER_MAX_TASKS_PER_CHILD``) or above a memory ceiling
(``CELERY_WORKER_MAX_MEMORY_PER_CHILD``, KiB)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings
from tests.reliability.apps import batch_worker, register


@pytest.mark.parametrize(
    ("env", "jobs", "least_pids"),
    [
        ({"CELERY_WORKER_MAX_TASKS_PER_CHILD": "2"}, 4, 2),
        ({"CELERY_WORKER_MAX_MEMORY_PER_CHILD": "1"}, 2, 2),
    ],
    ids=["max-tasks", "max-memory"],
)
def test_pool_processes_are_recycled(
    settings: Settings,
    redis_client: redis.Redis,
    broker_url: str,
    tmp_path: Path,
    env: dict[str, str],
    jobs: int,
    least_pids: int,
) -> None:
    app = Conveyor(settings)
    register(app)
    with batch_worker(broker_url, tmp_path / "w.log", env=env):
        pids = set()
        for i in range(jobs):
            state = app.submit("hy.pid", {"n": i}).wait(timeout=30)
            assert state.status == "succeeded"
            pids.add(state.result["pid"])
    assert len(pids) >= least_pids, pids
