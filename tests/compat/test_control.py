"""Celery's control channel on Conveyor's workers: stock clients and `celery -A conveyor.celery`."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from conveyor import Conveyor
from conveyor.testing import WorkerProcess
from tests.compat.conftest import run_stock

PING = """
replies = stock.control.inspect(timeout=3).ping() or {}
active = stock.control.inspect(timeout=3).active() or {}
print(json.dumps({"ping": sorted(replies), "active": sorted(active)}))
"""


def celery_cli(broker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``celery -A conveyor.celery ARGS`` as a user runs it (the app from the environment)."""
    env = dict(os.environ, REDIS_URL=broker_url)
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "conveyor.celery", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_stock_inspect_then_celery_cli_get_replies_and_leave_nothing_unacked(
    app: Conveyor, broker_url: str, worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    later = app.submit("diag.noop", {}, delay=600)
    before = redis_client.hlen("unacked")
    # A stock client writes \x06\x16-separated bindings; the worker must still reply to it
    # and, after it, to Conveyor's own app (one binding table is shared by both).
    stock = run_stock(PING, broker_url)
    assert worker.name in stock["ping"], worker.log()[-2000:]
    assert worker.name in stock["active"]
    for command in (["inspect", "ping"], ["inspect", "active"], ["inspect", "stats"]):
        done = celery_cli(broker_url, *command, "--timeout", "2")
        assert done.returncode == 0, done.stdout + done.stderr
        assert worker.name in done.stdout, done.stdout + done.stderr
    done = celery_cli(broker_url, "inspect", "scheduled", "--timeout", "2")
    assert later.id in done.stdout, done.stdout + done.stderr
    done = celery_cli(broker_url, "control", "enable_events", "--timeout", "2")
    assert done.returncode == 0 and worker.name in done.stdout, done.stdout + done.stderr
    # Replies are consumed without acknowledgement: none may stay in kombu's unacked hash.
    assert redis_client.hlen("unacked") == before
    assert "ValueError" not in worker.log()
