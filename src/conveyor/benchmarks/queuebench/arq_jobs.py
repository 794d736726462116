"""arq: 2 worker processes with its defaults (10 jobs each at a time, 0.5 s poll, results kept).

``python -m queuebench.arq_jobs`` is ``arq queuebench.arq_jobs.WorkerSettings`` with
warnings-only logging.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from . import broker_url
from .probe import report

#: The distribution whose version the run reports.
DIST = "arq"
CONFIG = "2 workers, defaults (max_jobs 10, poll_delay 0.5 s, async jobs), results kept"
BULK = "asyncio.gather(pool.enqueue_job()) 50 at a time"
SINGLE = "await pool.enqueue_job()"


async def noop(ctx: dict[str, Any], i: int) -> int:
    """Record the start, nothing else."""
    report("n", i)
    return i


async def stamp(ctx: dict[str, Any], i: int) -> int:
    """Record the start (latency jobs)."""
    report("s", i)
    return i


async def sleep10(ctx: dict[str, Any], i: int) -> int:
    """Wait 10 ms, as an I/O-bound job does; record the end."""
    await asyncio.sleep(0.01)
    report("z", i)
    return i


class WorkerSettings:
    """arq's worker settings: the defaults, these functions, this run's broker."""

    functions = [noop, stamp, sleep10]
    redis_settings = RedisSettings.from_dsn(broker_url())


def worker_argv(kind: str) -> list[list[str]]:
    """Two workers."""
    return [[sys.executable, "-m", __name__]] * 2


class _Client:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(WorkerSettings.redis_settings))

    async def _bulk(self, kind: str, ids: range) -> None:
        for start in range(ids.start, ids.stop, 50):
            chunk = range(start, min(start + 50, ids.stop))
            await asyncio.gather(*(self.pool.enqueue_job(kind, i) for i in chunk))

    def enqueue_bulk(self, kind: str, ids: range) -> None:
        self.loop.run_until_complete(self._bulk(kind, ids))

    def enqueue_one(self, kind: str, i: int) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job(kind, i))

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()


def make_client() -> _Client:
    """The submitting side."""
    return _Client()


if __name__ == "__main__":
    from arq.worker import run_worker

    logging.basicConfig(level=logging.WARNING)
    run_worker(WorkerSettings)
