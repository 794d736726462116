"""Huey: ``RedisHuey`` (results on, blocking dequeue), one consumer with 2 worker processes."""

from __future__ import annotations

import sys
import time

from huey import RedisHuey

from . import broker_url
from .probe import report

#: The distribution whose version the run reports.
DIST = "huey"
CONFIG = "huey_consumer -k process -w 2, results on; same workers for I/O"
BULK = "task(i) in a loop (no bulk call)"
SINGLE = "task(i)"

huey = RedisHuey("queuebench", url=broker_url())


def noop(i: int) -> int:
    """Record the start, nothing else."""
    report("n", i)
    return i


def stamp(i: int) -> int:
    """Record the start (latency jobs)."""
    report("s", i)
    return i


def sleep10(i: int) -> int:
    """Wait 10 ms, as an I/O-bound job does; record the end."""
    time.sleep(0.01)
    report("z", i)
    return i


TASKS = {f.__name__: huey.task(name=f.__name__)(f) for f in (noop, stamp, sleep10)}


def worker_argv(kind: str) -> list[list[str]]:
    """One consumer, 2 worker processes."""
    consumer = [sys.executable, "-m", "huey.bin.huey_consumer", f"{__name__}.huey"]
    return [[*consumer, "-k", "process", "-w", "2", "-q"]]


class _Client:
    def enqueue_bulk(self, kind: str, ids: range) -> None:
        task = TASKS[kind]
        for i in ids:
            task(i)

    def enqueue_one(self, kind: str, i: int) -> None:
        TASKS[kind](i)

    def close(self) -> None:
        pass


def make_client() -> _Client:
    """The submitting side."""
    return _Client()
