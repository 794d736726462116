"""Conveyor with full tracking: live state, events, the recorder and delivery leases all on.

No-op and latency jobs run on one ``processing`` worker with 2 pool children (the
profile's pool); 10 ms jobs on an I/O profile: 2 workers with a pool of 8 threads
each. A recorder writes every event to the job store (SQLite in ``CONVEYOR_HOME``)
throughout, as in a deployment.
"""

from __future__ import annotations

import socket
import sys
import time

from pydantic import BaseModel

from conveyor.app import Conveyor
from conveyor.jobs import JobContext
from conveyor.settings import Settings

from . import broker_url
from .probe import report

#: The distribution whose version the run reports.
DIST = "conveyor"
CONFIG = (
    "processing worker -c 2 (its pool), recorder on; I/O: 2 workers, threads pool -c 8; "
    "live state + events + recorder + leases"
)
BULK = "app.submit_many(), 1,000 a round trip"
SINGLE = "app.submit()"
#: Workers find this app by ``CONVEYOR_APP``; everything else is Conveyor's defaults.
WORKER_ENV = {"CONVEYOR_APP": f"{__name__}:app", "REDIS_URL": broker_url()}

app = Conveyor(Settings(redis_url=broker_url()), packs=())


class Item(BaseModel):
    """The job's number in its phase."""

    i: int


def noop(ctx: JobContext, params: Item) -> None:
    """Record the start, nothing else."""
    report("n", params.i)


def stamp(ctx: JobContext, params: Item) -> None:
    """Record the start (latency jobs)."""
    report("s", params.i)


def sleep10(ctx: JobContext, params: Item) -> None:
    """Wait 10 ms, as an I/O-bound job does; record the end."""
    time.sleep(0.01)
    report("z", params.i)


for _func in (noop, stamp, sleep10):
    app.job(f"bench.{_func.__name__}", queue="processing", retries=0)(_func)


def _worker(name: str, *options: str) -> list[str]:
    worker = [sys.executable, "-m", "conveyor", "worker", "--profile", "processing", *options]
    return [*worker, "--loglevel", "WARNING", "--name", f"bench-{name}@{socket.gethostname()}"]


def worker_argv(kind: str) -> list[list[str]]:
    """The workers for ``kind`` (``noop`` or ``io``), and the recorder."""
    recorder = [sys.executable, "-m", "conveyor", "recorder"]
    if kind == "io":
        io = ("--pool", "threads", "--concurrency", "8")
        return [_worker("io1", *io), _worker("io2", *io), recorder]
    return [_worker("1", "--concurrency", "2"), recorder]


class _Client:
    def enqueue_bulk(self, kind: str, ids: range) -> None:
        app.submit_many(f"bench.{kind}", ({"i": i} for i in ids))

    def enqueue_one(self, kind: str, i: int) -> None:
        app.submit(f"bench.{kind}", {"i": i})

    def close(self) -> None:
        app.redis.close()


def make_client() -> _Client:
    """The submitting side."""
    return _Client()
