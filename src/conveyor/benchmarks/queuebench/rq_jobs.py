"""RQ: 2 × ``rq worker -w SimpleWorker`` (the default worker forks per job: ~80 jobs/s)."""

from __future__ import annotations

import sys

from redis import Redis
from rq import Queue

from . import broker_url
from .jobs import FUNCTIONS

#: The distribution whose version the run reports.
DIST = "rq"
CONFIG = "2 × rq worker -w SimpleWorker (no fork per job), results kept; same workers for I/O"
BULK = "Queue.enqueue_many() (pipelined), 1,000 a call"
SINGLE = "Queue.enqueue()"


def worker_argv(kind: str) -> list[list[str]]:
    """Two simple workers."""
    worker = [sys.executable, "-m", "rq.cli", "worker", "-u", broker_url()]
    return [
        [*worker, "--logging_level", "WARNING", "-w", "rq.worker.SimpleWorker", "queuebench"]
    ] * 2


class _Client:
    def __init__(self) -> None:
        self.queue = Queue("queuebench", connection=Redis.from_url(broker_url()))

    def enqueue_bulk(self, kind: str, ids: range) -> None:
        func = FUNCTIONS[kind]
        for start in range(ids.start, ids.stop, 1000):
            chunk = range(start, min(start + 1000, ids.stop))
            self.queue.enqueue_many([Queue.prepare_data(func, args=(i,)) for i in chunk])

    def enqueue_one(self, kind: str, i: int) -> None:
        self.queue.enqueue(FUNCTIONS[kind], i)

    def close(self) -> None:
        self.queue.connection.close()


def make_client() -> _Client:
    """The submitting side."""
    return _Client()
