"""Rate limits hold across workers: ``rate_limit="5/s"`` with 3 workers starts at most 5
jobs in any second; jobs over the limit wait on the delayed set, not failed, no retry used."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings, delayed, keys
from conveyor.enqueue import hand_back, move
from conveyor.errors import ConfigurationError
from conveyor.ratelimits import parse_rate
from conveyor.submission import Submission
from conveyor.testing import WorkerProcess, wait_until
from tests.chaos.conftest import stop_together
from tests.reliability.apps import batch_worker, register

JOBS = 20
LIMIT = 5


@pytest.fixture
def three_workers(broker_url: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    workers = [
        batch_worker(
            broker_url,
            tmp_path / f"worker-{i}.log",
            concurrency=2,
            env={"CONVEYOR_DELAYED_POLL_S": "0.1"},
        )
        for i in range(3)
    ]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        stop_together(workers)


def test_rate_limit_holds_across_three_workers(
    settings: Settings, redis_client: redis.Redis, three_workers: list[WorkerProcess]
) -> None:
    app = Conveyor(settings)
    register(app)
    began = time.time()
    jobs = [app.submit("rl.tick", {"n": i}) for i in range(JOBS)]
    try:
        wait_until(
            lambda: all(job.state().status == "succeeded" for job in jobs),
            timeout=60,
            interval=0.2,
            what="every rate-limited job to succeed",
        )
    except AssertionError:
        stuck = [job.state() for job in jobs if job.state().status != "succeeded"]
        delayed = redis_client.zrange("conveyor:delayed", 0, -1, withscores=True)
        raise AssertionError(f"not succeeded: {stuck}; delayed: {delayed}") from None
    states = [job.state() for job in jobs]
    assert all(s.attempt == 0 and s.error is None for s in states)  # no retry used
    starts = sorted(s.result["at"] for s in states)
    # At most LIMIT starts in any one-second window (a little slack for the clock of
    # the start record, taken just after the broker granted the slot).
    busiest = max(sum(1 for t in starts if s <= t < s + 0.95) for s in starts)
    assert busiest <= LIMIT, starts
    elapsed = starts[-1] - began
    assert elapsed >= (JOBS / LIMIT - 1) - 0.2, elapsed
    deferred = sum(w.log().count("rate limited (5/s)") for w in three_workers)
    assert deferred >= JOBS - LIMIT
    used = {w.name for w in three_workers if "Task rl.tick[" in w.log()}
    print(
        f"\nrate limit 5/s: {JOBS} jobs over 3 workers in {elapsed:.1f}s, busiest second "
        f"{busiest} starts, {deferred} deferrals, {len(used)} workers ran them"
    )


def test_rate_strings() -> None:
    assert parse_rate("10/m") == (10, 60.0)
    assert parse_rate("5/s") == (5, 1.0)
    assert parse_rate("100/h") == (100, 3600.0)
    assert parse_rate("3/10s") == (3, 10.0)
    for bad in ("fast", "0/s", "5/fortnight", "/s"):
        with pytest.raises(ConfigurationError):
            parse_rate(bad)


def test_a_job_deferred_again_while_the_mover_publishes_it_keeps_its_new_entry(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    # A rate-limited job can run and be deferred again as soon as the mover published
    # it: the mover's removal of the entry it claimed must spare the new entry.
    published: list[str] = []

    def entry(job_id: str, due_at: float, n: int) -> Submission:
        return Submission(job_id, "diag.noop", {"n": n}, "processing", 3, due_at=due_at)

    def publish(submission: Submission, claim: float) -> bool:
        done = move(app, submission, claim)
        published.append(submission.id)
        if submission.id == "j1":
            hand_back(app, again)
        return done

    again = entry("j1", time.time() + 5, 2)
    for job_id in ("j1", "j2"):
        hand_back(app, entry(job_id, time.time() - 1, 1))
    assert delayed.Mover(redis_client, publish).move_due() == 2
    assert sorted(published) == ["j1", "j2"]
    assert [m for m, _ in redis_client.zrange(keys.DELAYED, 0, -1, withscores=True)] == [b"j1"]
    assert redis_client.hget(keys.DELAYED_JOBS, "j1") == again.to_json().encode()
