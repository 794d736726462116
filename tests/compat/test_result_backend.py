"""A plain Celery client with Conveyor's result backend follows Conveyor jobs."""

from __future__ import annotations

from conveyor import Conveyor
from conveyor.testing import WorkerProcess
from tests.compat.conftest import run_stock

RESULTS = """
import time
from celery import group
from celery.exceptions import TimeoutError
client = Celery("client", broker=sys.argv[1], backend="conveyor+" + sys.argv[1])
out = {}
slow = client.send_task("diag.sleep", kwargs={"seconds": 2, "steps": 4})
later = client.send_task("diag.noop", kwargs={}, countdown=600)
out["pending"] = client.AsyncResult(later.id).status
deadline = time.monotonic() + 60
while slow.status != "STARTED" or not (slow.info or {}).get("progress"):
    assert time.monotonic() < deadline, slow.status
    time.sleep(0.05)
out["running"] = [slow.status, slow.info["progress"]]
out["result"] = slow.get(timeout=60)
out["status"] = slow.status
bad = client.send_task("diag.flaky", kwargs={"fail_times": 1, "permanent": True})
try:
    bad.get(timeout=60)
except Exception as exc:
    out["failure"] = [bad.status, type(exc).__name__, str(exc)]
by_id = client.AsyncResult(sys.argv[2])
out["conveyor_job"] = by_id.get(timeout=60)
jobs = group(client.signature("diag.flaky", kwargs={"fail_times": 0}) for _ in range(3))
out["group"] = jobs.apply_async().get(timeout=60)
print(json.dumps(out))
"""


def test_async_result_and_group_result_read_conveyor_state(
    app: Conveyor, broker_url: str, worker: WorkerProcess
) -> None:
    submitted = app.submit("diag.sleep", {"seconds": 0.01})
    out = run_stock(RESULTS, broker_url, submitted.id)
    assert out["pending"] == "PENDING"
    assert out["running"][0] == "STARTED" and out["running"][1] > 0
    assert out["result"] == {"slept_s": 2.0} and out["status"] == "SUCCESS"
    assert out["failure"][:2] == ["FAILURE", "PermanentError"]
    assert "permanent failure" in out["failure"][2]
    assert out["conveyor_job"] == {"slept_s": 0.01}
    assert out["group"] == [{"attempts": 1}] * 3
