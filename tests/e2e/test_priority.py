"""Priorities on Redis are exact: 11 distinct levels, 10 first, and queues in priority order.

Plain Celery on Redis folds priorities into four lists, reversed, and walks
priority steps before queues (celery#8967); these tests prove Conveyor does not.
"""

from __future__ import annotations

import random
from pathlib import Path

from conveyor import Conveyor, Job
from conveyor.testing import WorkerProcess


def start_order(jobs: list[Job]) -> list[Job]:
    states = {job.id: job.wait(timeout=60) for job in jobs}
    return sorted(jobs, key=lambda job: states[job.id].started_at or 0.0)


def test_priority_nine_queued_after_ten_zeros_runs_first(
    app: Conveyor, broker_url: str, worker_log: Path
) -> None:
    low = [app.submit("diag.noop", {}, priority=0) for _ in range(10)]
    urgent = app.submit("diag.noop", {}, priority=9)
    with WorkerProcess(broker_url, concurrency=1, log_path=worker_log):
        order = start_order([*low, urgent])
    assert order[0].id == urgent.id


def test_every_level_is_distinct_and_ordered(
    app: Conveyor, broker_url: str, worker_log: Path
) -> None:
    levels = list(range(11))
    random.Random(7).shuffle(levels)
    jobs = {level: app.submit("diag.noop", {}, priority=level) for level in levels}
    with WorkerProcess(broker_url, concurrency=1, log_path=worker_log):
        order = start_order(list(jobs.values()))
    by_id = {job.id: level for level, job in jobs.items()}
    assert [by_id[job.id] for job in order] == list(range(10, -1, -1))


def test_critical_drains_before_batch(app: Conveyor, broker_url: str, worker_log: Path) -> None:
    # Batch jobs carry the highest message priority, critical ones the lowest:
    # the queue's priority still wins.
    batch = [app.submit("diag.noop", {}, queue="batch", priority=10) for _ in range(5)]
    critical = [app.submit("diag.noop", {}, queue="critical", priority=0) for _ in range(5)]
    with WorkerProcess(
        broker_url, concurrency=1, queues=["batch", "critical"], log_path=worker_log
    ):
        order = start_order([*batch, *critical])
    assert {job.id for job in order[:5]} == {job.id for job in critical}
