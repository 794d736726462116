"""Fixtures for the stock-Celery tests: the e2e worker, and a stock Celery subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.e2e.conftest import worker

__all__ = ["run_stock", "worker"]


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
