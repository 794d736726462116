"""Plain Celery with its defaults: one prefork worker with 2 children, prefetch 4, results on."""

from __future__ import annotations

import sys
import time

from celery import Celery

from . import broker_url
from .probe import report

#: The distribution whose version the run reports.
DIST = "celery"
CONFIG = "prefork -c 2, prefetch 4, results in Redis (defaults); same workers for I/O"
BULK = "task.delay() in a loop"
SINGLE = "task.delay()"

app = Celery("queuebench", broker=broker_url(), backend=broker_url())
app.conf.broker_connection_retry_on_startup = True


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


TASKS = {f.__name__: app.task(name=f"queuebench.{f.__name__}")(f) for f in (noop, stamp, sleep10)}


def worker_argv(kind: str) -> list[list[str]]:
    """One worker with Celery's default prefork pool of 2 children."""
    return [
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            __name__,
            "worker",
            "-l",
            "WARNING",
            "-P",
            "prefork",
            "-c",
            "2",
            "-n",
            "plain@%h",
        ]
    ]


class _Client:
    def enqueue_bulk(self, kind: str, ids: range) -> None:
        task = TASKS[kind]
        for i in ids:
            task.delay(i)

    def enqueue_one(self, kind: str, i: int) -> None:
        TASKS[kind].delay(i)

    def close(self) -> None:
        pass


def make_client() -> _Client:
    """The submitting side."""
    return _Client()
