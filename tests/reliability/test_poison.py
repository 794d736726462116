"""A job that kills its own worker process on every delivery is dead-lettered, not
redelivered forever (``CONVEYOR_MAX_REDELIVERIES``)."""

from __future__ import annotations

from pathlib import Path

import redis

from conveyor import Conveyor, Settings
from tests.reliability.apps import batch_worker, register


def test_job_that_crashes_its_process_every_time_fails_after_the_limit(
    settings: Settings, redis_client: redis.Redis, broker_url: str, tmp_path: Path
) -> None:
    app = Conveyor(settings)
    register(app)
    with batch_worker(
        broker_url, tmp_path / "w.log", env={"CONVEYOR_MAX_REDELIVERIES": "2"}
    ) as worker:
        state = app.submit("hy.crash", {}).wait(timeout=90)
        assert state.status == "failed", worker.log()[-3000:]
        assert state.error is not None and state.error.type == "DeliveryLimitExceeded"
        # One start, two redeliveries that crashed too, then the start that gave up.
        assert state.deliveries == 4 and state.attempt == 0
        # The worker lives on and runs the next job.
        assert app.submit("hy.pid", {}).wait(timeout=30).status == "succeeded"
