"""End-to-end fixtures: real ``conveyor worker`` subprocesses on the session broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing import WorkerProcess


@pytest.fixture(scope="module")
def worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker (prefork, 2 children) on processing and batch, shared by a test module."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = WorkerProcess(
        broker_url,
        profile="processing",
        concurrency=2,
        queues=["processing", "batch"],
        log_path=log,
    )
    with process:
        yield process


@pytest.fixture
def worker_log(tmp_path: Path) -> Path:
    """A log file for a worker started inside one test."""
    return tmp_path / "worker.log"
