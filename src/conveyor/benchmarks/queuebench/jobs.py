"""The three jobs every queue runs, as plain functions and as coroutines.

``noop`` and ``stamp`` record their start (the no-op and the latency phases);
``sleep10`` waits 10 ms, as an I/O-bound job does, and records its end.
"""

from __future__ import annotations

import asyncio
import time

from .probe import report


def noop(i: int) -> int:
    """Record the start, nothing else."""
    report("n", i)
    return i


def stamp(i: int) -> int:
    """Record the start (latency jobs)."""
    report("s", i)
    return i


def sleep10(i: int) -> int:
    """Wait 10 ms in ``time.sleep``; record the end."""
    time.sleep(0.01)
    report("z", i)
    return i


async def noop_async(i: int) -> int:
    """:func:`noop` as a coroutine."""
    report("n", i)
    return i


async def stamp_async(i: int) -> int:
    """:func:`stamp` as a coroutine."""
    report("s", i)
    return i


async def sleep10_async(i: int) -> int:
    """Wait 10 ms in ``asyncio.sleep``; record the end."""
    await asyncio.sleep(0.01)
    report("z", i)
    return i


#: By kind: the functions for thread and process pools.
FUNCTIONS = {"noop": noop, "stamp": stamp, "sleep10": sleep10}
#: By kind: the coroutines for event-loop workers.
COROUTINES = {"noop": noop_async, "stamp": stamp_async, "sleep10": sleep10_async}
