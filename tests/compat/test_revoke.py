"""Celery-native revoke (Flower's revoke and terminate too) ends a Conveyor job ``cancelled``."""

from __future__ import annotations

import time

import redis

from conveyor import Conveyor
from conveyor.store import open_store
from conveyor.store.recorder import Recorder
from conveyor.testing import WorkerProcess, wait_until
from tests.compat.conftest import run_stock

SUBMIT = """
running = stock.send_task("diag.sleep", kwargs={"seconds": 60}, queue="processing").id
later = stock.send_task("diag.noop", kwargs={}, countdown=3600).id
print(json.dumps({"running": running, "later": later}))
"""

REVOKE = """
stock.control.revoke(sys.argv[2])
stock.control.revoke(sys.argv[3], terminate=True, signal="SIGKILL")
print(json.dumps(sorted(stock.control.inspect(timeout=2).ping() or {})))
"""


def test_revoke_and_terminate_cancel_jobs_and_leave_the_worker_fast(
    app: Conveyor, broker_url: str, worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    ids = run_stock(SUBMIT, broker_url)
    running, later = app.get_job(ids["running"]), app.get_job(ids["later"])
    wait_until(lambda: running.state().status == "started", timeout=60, what="the sleep started")
    # The countdown message is adopted onto the delayed set once the relay moved it.
    wait_until(
        lambda: redis_client.hget(f"conveyor:job:{later.id}", "status") == b"scheduled",
        timeout=60,
        what="the countdown job scheduled",
    )

    pinged = run_stock(REVOKE, broker_url, later.id, running.id)
    assert worker.name in pinged
    assert later.wait(timeout=30).status == "cancelled"
    assert running.wait(timeout=30).status == "cancelled"

    # The worker goes on at full speed after the terminate.
    started = time.monotonic()
    for _ in range(3):
        assert app.submit("diag.noop", {}).wait(timeout=30).status == "succeeded"
    took = time.monotonic() - started
    print(f"3 no-op jobs after a terminate: {took:.2f}s")
    assert took < 15, "no-op jobs slowed down after a terminate"

    store = open_store(app.settings)
    store.upgrade()
    Recorder(store, app.redis, consumer="test").drain()
    for job in (running, later):
        record = store.get_job(job.id)
        assert record is not None and record.status == "cancelled"
