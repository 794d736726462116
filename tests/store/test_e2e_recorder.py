"""End to end: a real worker runs jobs, the recorder stores what the live state shows."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from tests.store.conftest import wait_recorded
from tests.store.test_recorder import running

from conveyor import Conveyor, Settings
from conveyor.store import JobStore
from conveyor.store.recorder import Recorder
from conveyor.testing import WorkerProcess

pytestmark = pytest.mark.e2e

COMPARED = (
    "status",
    "type",
    "queue",
    "priority",
    "attempt",
    "deliveries",
    "worker",
    "payload",
    "result",
    "error",
    "stage",
    "message",
    "progress",
)
#: Times come from the events' ``ts``, taken microseconds apart from the live fields'.
TIMES = ("created_at", "started_at", "finished_at")


def test_recorded_jobs_match_their_live_state(
    store: JobStore,
    store_settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    if str(store_settings.database_url).startswith("postgresql"):
        pytest.skip("one back end is enough here: the merge is covered on both")
    app = Conveyor(store_settings)
    recorder = Recorder(store, redis_client)
    worker = WorkerProcess(
        str(store_settings.redis_url), concurrency=2, log_path=tmp_path / "worker.log"
    )
    with running(recorder), worker:
        jobs = [
            app.submit("diag.sleep", {"seconds": 0.2, "steps": 2}),
            app.submit("diag.flaky", {"fail_times": 1}),
            app.submit("diag.flaky", {"fail_times": 1, "permanent": True}),
            app.submit("diag.noop", {}, priority=9),
        ]
        finals = [job.wait(timeout=60) for job in jobs]
        wait_recorded(redis_client)
    assert [s.status for s in finals] == ["succeeded", "succeeded", "failed", "succeeded"]
    for live in finals:
        record = store.get_job(live.id)
        assert record is not None
        stored = record.to_state()
        for name in COMPARED:
            assert getattr(stored, name) == getattr(live, name), (live.id, name)
        for name in TIMES:
            stored_at, live_at = getattr(stored, name), getattr(live, name)
            assert stored_at is not None and live_at is not None
            assert abs(stored_at - live_at) < 0.05, (live.id, name)
    letter = store.get_dead_letter(finals[2].id)
    assert letter is not None and letter.payload == {"fail_times": 1, "permanent": True}
