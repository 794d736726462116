"""Huey: ``RedisHuey`` (results on, blocking dequeue), one consumer with 2 worker processes."""

from __future__ import annotations

import sys

from huey import RedisHuey

from . import broker_url
from .clients import OneByOne
from .jobs import FUNCTIONS

#: The distribution whose version the run reports.
DIST = "huey"
CONFIG = "huey_consumer -k process -w 2, results on; same workers for I/O"
BULK = "task(i) in a loop (no bulk call)"
SINGLE = "task(i)"

huey = RedisHuey("queuebench", url=broker_url())

TASKS = {kind: huey.task(name=kind)(f) for kind, f in FUNCTIONS.items()}


def worker_argv(kind: str) -> list[list[str]]:
    """One consumer, 2 worker processes."""
    consumer = [sys.executable, "-m", "huey.bin.huey_consumer", f"{__name__}.huey"]
    return [[*consumer, "-k", "process", "-w", "2", "-q"]]


def make_client() -> OneByOne:
    """The submitting side."""
    return OneByOne(lambda kind, i: TASKS[kind](i))
