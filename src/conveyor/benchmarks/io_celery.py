"""Plain Celery running 10 ms I/O jobs on its threads pool, for the I/O benchmark's ratio.

``celery -A conveyor.benchmarks.io_celery worker -P threads``: no result backend, no
events, no tracking; the task sleeps, then appends ``tag finish-time`` to a probe
file (one ``O_APPEND`` write, no broker round trip), as ``plain_celery`` does.
"""

from __future__ import annotations

import os
import time

from celery import Celery

URL = os.environ.get("PLAIN_CELERY_BENCH_URL", "redis://127.0.0.1:6379/1")
PROBE_DIR = os.environ.get("PLAIN_CELERY_BENCH_PROBE", "/tmp")

app = Celery("plain-io", broker=URL)
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, task_acks_late=True)


@app.task(name="bench.sleep10")
def sleep10(tag: str, seconds: float = 0.01) -> None:
    """Sleep ``seconds``, then record this job's finish time."""
    time.sleep(seconds)
    line = f"{tag} {time.time():.6f}\n".encode()
    fd = os.open(
        os.path.join(PROBE_DIR, f"probe-{os.getpid()}.txt"), os.O_WRONLY | os.O_APPEND | os.O_CREAT
    )
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
