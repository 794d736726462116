"""Plain Celery with its defaults: one prefork worker with 2 children, prefetch 4, results on."""

from __future__ import annotations

import sys

from celery import Celery

from . import broker_url
from .clients import OneByOne
from .jobs import FUNCTIONS

#: The distribution whose version the run reports.
DIST = "celery"
CONFIG = "prefork -c 2, prefetch 4, results in Redis (defaults); same workers for I/O"
BULK = "task.delay() in a loop"
SINGLE = "task.delay()"

app = Celery("queuebench", broker=broker_url(), backend=broker_url())
app.conf.broker_connection_retry_on_startup = True

TASKS = {kind: app.task(name=f"queuebench.{kind}")(f) for kind, f in FUNCTIONS.items()}


def worker_argv(kind: str) -> list[list[str]]:
    """One worker with Celery's default prefork pool of 2 children."""
    worker = [sys.executable, "-m", "celery", "-A", __name__, "worker", "-l", "WARNING"]
    return [[*worker, "-P", "prefork", "-c", "2", "-n", "plain@%h"]]


def make_client() -> OneByOne:
    """The submitting side."""
    return OneByOne(lambda kind, i: TASKS[kind].delay(i))
