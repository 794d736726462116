"""A stock Celery producer's messages are all run or refused on record, never lost."""

from __future__ import annotations

import redis

from conveyor import Conveyor
from conveyor.store import open_store
from conveyor.store.recorder import Recorder
from conveyor.testing import WorkerProcess, wait_until
from tests.compat.conftest import run_stock

SEND = """
out = {}
out["no_queue"] = stock.send_task("diag.noop", kwargs={}).id
out["urgent"] = stock.send_task("diag.noop", kwargs={}, queue="processing", priority=1).id
out["prio5"] = stock.send_task("diag.noop", kwargs={}, queue="processing", priority=5).id
out["prio9_no_queue"] = stock.send_task("diag.noop", kwargs={}, priority=9).id
out["unknown_queue"] = stock.send_task("diag.noop", kwargs={}, queue="no-such-queue").id
out["kwargs"] = stock.send_task("diag.sleep", kwargs={"seconds": 0.01, "steps": 2}).id
out["positional"] = stock.send_task("diag.noop", args=[1, 2]).id
out["invalid"] = stock.send_task("diag.sleep", kwargs={"seconds": -1}).id
out["unknown_type"] = stock.send_task("billing.no_such_job", kwargs={}, queue="processing").id
print(json.dumps(out))
"""


def statuses(client: redis.Redis, ids: dict[str, str]) -> dict[str, str]:
    return {
        name: (client.hget(f"conveyor:job:{job_id}", "status") or b"").decode()
        for name, job_id in ids.items()
    }


def test_every_stock_message_is_recorded_and_reaches_a_terminal_state(
    app: Conveyor, broker_url: str, worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    ids = run_stock(SEND, broker_url)
    terminal = {"succeeded", "failed", "cancelled"}
    wait_until(
        lambda: set(statuses(redis_client, ids).values()) <= terminal,
        timeout=60,
        what=f"every stock message finished: {statuses(redis_client, ids)}\n{worker.log()[-3000:]}",
    )
    final = statuses(redis_client, ids)
    failed = {"positional", "invalid", "unknown_type"}
    assert {n for n, s in final.items() if s == "failed"} == failed, final
    assert {n for n, s in final.items() if s == "succeeded"} == set(ids) - failed
    for name in ("positional", "invalid", "unknown_type"):
        state = app.get_job(ids[name]).state()
        assert state.error is not None
        assert state.error.type in ("Unrunnable", "PayloadInvalid", "UnknownJobType"), state
    kwargs_job = app.get_job(ids["kwargs"]).state()
    assert kwargs_job.payload == {"seconds": 0.01, "steps": 2}
    # Stock priorities map onto Conveyor's levels (low is urgent there, high here);
    # none given keeps the job type's default (its queue's: processing is 3).
    assert app.get_job(ids["no_queue"]).state().priority == 3
    assert app.get_job(ids["urgent"]).state().priority == 9
    assert app.get_job(ids["prio5"]).state().priority == 5
    assert app.get_job(ids["prio9_no_queue"]).state().priority == 1
    store = open_store(app.settings)
    store.upgrade()
    Recorder(store, app.redis, consumer="test").drain()
    for name, job_id in ids.items():
        record = store.get_job(job_id)
        assert record is not None and record.status == final[name], name
        assert (store.get_dead_letter(job_id) is not None) == (name in failed), name
    # Nothing is left on the lists a stock producer writes.
    leftovers = [k for k in redis_client.scan_iter() if b"\x06\x16" in k or k == b"celery"]
    assert leftovers == []
