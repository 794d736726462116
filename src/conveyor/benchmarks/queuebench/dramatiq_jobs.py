"""Dramatiq: ``RedisBroker`` with the Results middleware, 2 processes × 8 threads (defaults)."""

from __future__ import annotations

import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from . import broker_url
from .clients import OneByOne
from .jobs import FUNCTIONS

#: The distribution whose version the run reports.
DIST = "dramatiq"
CONFIG = "--processes 2 --threads 8 (defaults), results stored; same workers for I/O"
BULK = "actor.send() in a loop"
SINGLE = "actor.send()"

broker = RedisBroker(url=broker_url())
broker.add_middleware(Results(backend=RedisBackend(url=broker_url())))
dramatiq.set_broker(broker)

ACTORS = {
    kind: dramatiq.actor(f, queue_name="queuebench", store_results=True)
    for kind, f in FUNCTIONS.items()
}


def worker_argv(kind: str) -> list[list[str]]:
    """2 worker processes of 8 threads each."""
    return [[sys.executable, "-m", "dramatiq", __name__, "--processes", "2", "--threads", "8"]]


def make_client() -> OneByOne:
    """The submitting side."""
    return OneByOne(lambda kind, i: ACTORS[kind].send(i))
