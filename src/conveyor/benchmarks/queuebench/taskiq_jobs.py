"""taskiq + taskiq-redis: ``ListQueueBroker`` (BRPOP) and a Redis result backend, 2 workers."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from . import broker_url
from .jobs import COROUTINES

#: The distribution whose version the run reports.
DIST = "taskiq"
CONFIG = "taskiq worker --workers 2 (async jobs), ListQueueBroker, results stored"
BULK = "asyncio.gather(task.kiq()) 200 at a time"
SINGLE = "await task.kiq()"

broker = ListQueueBroker(broker_url(), queue_name="queuebench").with_result_backend(
    RedisAsyncResultBackend(broker_url(), result_ex_time=3600)
)

TASKS = {kind: broker.task(task_name=kind)(f) for kind, f in COROUTINES.items()}


def worker_argv(kind: str) -> list[list[str]]:
    """2 worker processes."""
    worker = [sys.executable, "-m", "taskiq", "worker", f"{__name__}:broker"]
    return [[*worker, "--workers", "2", "--log-level", "WARNING"]]


class _Client:
    def __init__(self) -> None:
        # The broker's connection pools belong to the loop that started it: keep one.
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())

    async def _bulk(self, task: Any, ids: range) -> None:
        for start in range(ids.start, ids.stop, 200):
            await asyncio.gather(*(task.kiq(i) for i in range(start, min(start + 200, ids.stop))))

    def enqueue_bulk(self, kind: str, ids: range) -> None:
        self.loop.run_until_complete(self._bulk(TASKS[kind], ids))

    def enqueue_one(self, kind: str, i: int) -> None:
        self.loop.run_until_complete(TASKS[kind].kiq(i))

    def close(self) -> None:
        self.loop.run_until_complete(broker.shutdown())
        self.loop.close()


def make_client() -> _Client:
    """The submitting side."""
    return _Client()
