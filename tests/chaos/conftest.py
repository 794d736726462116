"""Chaos fixtures: real workers that the tests kill, and the figures they measured."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from conveyor.testing import WorkerProcess

#: Heartbeat interval of the chaos workers: a dead worker is known after 3 of them
#: (``CHAOS_HEARTBEAT_S=5`` measures with the default interval).
HEARTBEAT_S = os.environ.get("CHAOS_HEARTBEAT_S", "1")


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
    stop_together(started)


def stop_together(workers: list[WorkerProcess], timeout: float = 15.0) -> None:
    """Warm-shut all ``workers`` down at once (SIGKILL what is left), and close them."""
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        if worker.process is not None:
            with contextlib.suppress(Exception):
                worker.process.wait(timeout=timeout)
        kill_group(worker)
        worker.close()
