"""A batch's jobs are enqueued pipelined: the round trips do not grow with its size."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.connection import Connection

from conveyor import Conveyor, keys
from conveyor.client.batches import batch_counts, submit_batch


def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A counter of the requests sent to the broker from now on."""
    sent = [0]
    send = Connection.send_packed_command

    def counting(self: Connection, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    return sent


def test_a_batch_is_enqueued_in_a_few_round_trips_whatever_its_size(
    app: Conveyor, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.submit("diag.noop", {})  # connections and scripts loaded
    redis_client.delete(keys.queue_list("processing", 3))
    sent = round_trips(monkeypatch)

    def batch(plain: int, key: str) -> list[dict[str, Any]]:
        """Runs of ``plain`` jobs either side of one that claims an idempotency key."""
        items: list[dict[str, Any]] = [{"type": "diag.noop", "payload": {}} for _ in range(plain)]
        return [*items, {"type": "diag.noop", "payload": {}, "idempotency_key": key}, *items]

    submit_batch(app, batch(1, "first"), tenant="acme")
    trips_for_three, sent[0] = sent[0], 0
    redis_client.delete(keys.queue_list("processing", 3))
    batch_id, jobs = submit_batch(app, batch(20, "second"), tenant="acme")
    # Job by job, 41 jobs would take 41 trips or more. A connection's health-check
    # PING may add one or two whatever the batch's size.
    assert sent[0] <= trips_for_three + 2, (sent[0], trips_for_three)
    assert len(jobs) == 41 and redis_client.llen(keys.queue_list("processing", 3)) == 41
    counts = batch_counts(app, batch_id)
    assert counts.total == 41 and counts.queued == 41 and counts.job_ids == [j.id for j in jobs]
    state = jobs[0].state()
    assert state.status == "queued" and state.batch_id == batch_id and state.tenant == "acme"
