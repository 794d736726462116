"""Plain Celery running 10 ms I/O jobs on its threads pool, for the I/O benchmark's ratio.

``celery -A conveyor.benchmarks.io_celery worker -P threads``: no result backend, no
events, no tracking; the task sleeps, then appends ``tag finish-time`` to a probe
file with ``plain_celery``'s probe (one ``O_APPEND`` write, no broker round trip).
"""

from __future__ import annotations

import os
import time

from celery import Celery

from conveyor.benchmarks import plain_celery

URL = os.environ.get("PLAIN_CELERY_BENCH_URL", "redis://127.0.0.1:6379/1")

app = Celery("plain-io", broker=URL)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, task_acks_late=True)


@app.task(name="bench.sleep10")
def sleep10(tag: str, seconds: float = 0.01) -> None:
    """Sleep ``seconds``, then record this job's finish time."""
    time.sleep(seconds)
    plain_celery.noop.run(tag)  # the probe write, not a task call
