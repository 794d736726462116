"""Dramatiq: ``RedisBroker`` with the Results middleware, 2 processes × 8 threads (defaults)."""

from __future__ import annotations

import sys
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from . import broker_url
from .probe import report

#: The distribution whose version the run reports.
DIST = "dramatiq"
CONFIG = "--processes 2 --threads 8 (defaults), results stored; same workers for I/O"
BULK = "actor.send() in a loop"
SINGLE = "actor.send()"

broker = RedisBroker(url=broker_url())
broker.add_middleware(Results(backend=RedisBackend(url=broker_url())))
dramatiq.set_broker(broker)


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


ACTORS = {
    f.__name__: dramatiq.actor(f, queue_name="queuebench", store_results=True)
    for f in (noop, stamp, sleep10)
}


def worker_argv(kind: str) -> list[list[str]]:
    """2 worker processes of 8 threads each."""
    return [[sys.executable, "-m", "dramatiq", __name__, "--processes", "2", "--threads", "8"]]


class _Client:
    def enqueue_bulk(self, kind: str, ids: range) -> None:
        actor = ACTORS[kind]
        for i in ids:
            actor.send(i)

    def enqueue_one(self, kind: str, i: int) -> None:
        ACTORS[kind].send(i)

    def close(self) -> None:
        pass


def make_client() -> _Client:
    """The submitting side."""
    return _Client()
