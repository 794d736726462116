"""Fixtures for the stock-Celery tests: one shared worker, and a stock Celery subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.testing import WorkerProcess


@pytest.fixture(scope="package")
def worker(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker on processing and batch, shared by every module here (starting is slow)."""
    log = tmp_path_factory.mktemp("compat-worker") / "worker.log"
    queues = ["processing", "batch"]
    with WorkerProcess(broker_url, concurrency=2, queues=queues, log_path=log) as process:
        yield process


def run_stock(script: str, broker_url: str, *args: str, timeout: float = 120) -> Any:
    """Run ``script`` as a plain Celery user would: a fresh interpreter, no Conveyor import.

    The script gets the broker URL as ``sys.argv[1]`` and prints one JSON value.
    """
    preamble = (
        "import json, sys\nfrom celery import Celery\nstock = Celery('stock', broker=sys.argv[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", preamble + script, broker_url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "conveyor" not in done.stderr.lower() or "Traceback" not in done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
