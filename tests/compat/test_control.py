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


def celery_cli(broker_url: str, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """``celery -A conveyor.celery ARGS`` for each of ``commands``, as a user runs it (the
    app from the environment); started together, since each waits out its reply timeout."""
    env = dict(os.environ, REDIS_URL=broker_url)
    started = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "conveyor.celery", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            ),
        )
        for args in commands
    ]
    done = []
    for args, process in started:
        try:
            out, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for _, other in started:
                other.kill()
            raise
        done.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return done


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
    *inspected, scheduled, enabled = celery_cli(
        broker_url,
        ["inspect", "ping", "--timeout", "2"],
        ["inspect", "active", "--timeout", "2"],
        ["inspect", "stats", "--timeout", "2"],
        ["inspect", "scheduled", "--timeout", "2"],
        ["control", "enable_events", "--timeout", "2"],
    )
    for done in inspected:
        assert done.returncode == 0, done.stdout + done.stderr
        assert worker.name in done.stdout, done.stdout + done.stderr
    assert later.id in scheduled.stdout, scheduled.stdout + scheduled.stderr
    assert enabled.returncode == 0 and worker.name in enabled.stdout, (
        enabled.stdout + enabled.stderr
    )
    # Replies are consumed without acknowledgement: none may stay in kombu's unacked hash.
    assert redis_client.hlen("unacked") == before
    assert "ValueError" not in worker.log()
