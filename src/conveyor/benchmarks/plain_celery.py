"""Plain Celery with its default configuration, for comparison (``celery -A`` this module).

The only additions are the broker/backend URL from ``PLAIN_CELERY_BENCH_URL`` and a
no-op task that appends ``id start-time`` to a probe file (one ``O_APPEND`` write,
no broker round trip) so the runner can time it the same way as Conveyor.
"""

from __future__ import annotations

import os
import time

from celery import Celery

URL = os.environ.get("PLAIN_CELERY_BENCH_URL", "redis://127.0.0.1:6379/1")
PROBE_DIR = os.environ.get("PLAIN_CELERY_BENCH_PROBE", "/tmp")

app = Celery("plain", broker=URL, backend=URL)


@app.task(name="bench.noop")
def noop(tag: str) -> str:
    """Record the start time of this job, then return."""
    line = f"{tag} {time.time():.6f}\n".encode()
    fd = os.open(
        os.path.join(PROBE_DIR, f"probe-{os.getpid()}.txt"), os.O_WRONLY | os.O_APPEND | os.O_CREAT
    )
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return tag
