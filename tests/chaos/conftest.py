"""Chaos fixtures: real workers that the tests kill, and the figures they measured."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from conveyor.testing import WorkerProcess

#: Heartbeat interval of the chaos workers: a dead worker is known after 3 of them.
HEARTBEAT_S = "1"


def kill_group(worker: WorkerProcess) -> None:
    """SIGKILL everything left of a worker's process group (its orphaned pool children too)."""
    if worker.process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        worker.process.wait(timeout=10)


def pool_children(worker: WorkerProcess) -> list[psutil.Process]:
    """The worker's prefork pool processes."""
    try:
        return psutil.Process(worker.pid).children()
    except psutil.Error:
        return []


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Workers a test starts; whatever is left of them is killed at the end."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        with contextlib.suppress(Exception):
            worker.stop(timeout=15)
        kill_group(worker)
        worker.close()
