"""Rate limits hold across workers: ``rate_limit="5/s"`` with 3 workers starts at most 5
jobs in any second; jobs over the limit wait on the delayed set, not failed, no retry used.

The three workers are in-process runners (:func:`conveyor.worker.inline.run_waiting`,
what :func:`conveyor.testing.drain` runs) on threads of the test: the limit is kept
by the broker, whichever process asks for a slot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from conveyor import Conveyor, Settings, delayed, keys
from conveyor.enqueue import hand_back, move
from conveyor.errors import ConfigurationError
from conveyor.submission import Submission
from conveyor.testing import wait_until
from conveyor.worker.inline import run_waiting
from conveyor.worker.ratelimits import parse_rate
from tests.reliability.apps import register

JOBS = 20
LIMIT = 5
#: How often an idle runner looks for due jobs (a worker's CONVEYOR_DELAYED_POLL_S).
POLL_S = 0.1


class Runners:
    """Three in-process workers on ``batch``, each moving due delayed jobs and running
    what waits, until stopped; ``ran[name]`` lists the job ids each one ran."""

    def __init__(self, app: Conveyor, count: int = 3) -> None:
        self.app = app
        self.names = [f"batch-{i}@inline" for i in range(count)]
        self.ran: dict[str, list[str]] = {name: [] for name in self.names}
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(name,), daemon=True) for name in self.names
        ]

    def _run(self, name: str) -> None:
        try:
            while not self.stop.is_set():
                done = run_waiting(self.app, queues=["batch"], delayed_within_s=0, worker=name)
                self.ran[name] += done
                if not done:
                    self.stop.wait(POLL_S)
        except BaseException as exc:  # re-raised by the test
            self.errors.append(exc)

    def __enter__(self) -> Runners:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not self.errors, self.errors


@pytest.fixture
def rl_app(settings: Settings, redis_client: redis.Redis) -> Conveyor:
    app = Conveyor(settings)
    register(app)
    return app


@pytest.fixture
def worker_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What the runners log about their jobs."""
    caplog.set_level(logging.INFO, logger="conveyor.worker")
    yield caplog


def test_rate_limit_holds_across_three_workers(
    rl_app: Conveyor, redis_client: redis.Redis, worker_log: pytest.LogCaptureFixture
) -> None:
    app = rl_app
    began = time.time()
    jobs = [app.submit("rl.tick", {"n": i}) for i in range(JOBS)]
    with Runners(app) as runners:
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
    deferred = worker_log.text.count("rate limited (5/s)")
    assert deferred >= JOBS - LIMIT
    used = {name for name, ran in runners.ran.items() if ran}
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
