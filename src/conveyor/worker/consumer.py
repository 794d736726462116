"""In a ``procs`` consumer: what it tells its supervisor (:mod:`conveyor.worker.procs`).

One line per event on a pipe the supervisor passed down: ``start JOB HARD SOFT``
when a job starts (its effective limits in seconds, 0 for none), ``end`` when it
ends, ``terminate JOB`` when a cancelled job outlives its grace period. The
supervisor answers with signals only: ``SIGUSR1`` at the soft limit, ``SIGKILL``
at the hard one.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from celery import signals
from celery.exceptions import SoftTimeLimitExceeded

#: The environment variable that gives a consumer its pipe to the supervisor
#: (no ``CONVEYOR_`` prefix: those are settings, and unknown ones are refused).
REPORT_FD_ENV = "_CONVEYOR_PROCS_REPORT_FD"


class Reporter:
    """In a consumer: tells the supervisor when each job starts and ends."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.job: str | None = None

    def send(self, line: str) -> None:
        """Write one report line (atomic: a pipe write under PIPE_BUF bytes)."""
        with self.lock:
            os.write(self.fd, (line + "\n").encode())

    def started(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        """``task_prerun``: report the job and its effective limits."""
        hard = soft = 0.0
        if task is not None:
            limits = getattr(task.request, "timelimit", None) or (None, None)
            hard = float(limits[0] or task.time_limit or 0)
            soft = float(limits[1] or task.soft_time_limit or 0)
        self.job = task_id
        self.send(f"start {task_id} {hard:g} {soft:g}")

    def ended(self, **_: Any) -> None:
        """``task_postrun``: the job is over."""
        self.job = None
        self.send("end")

    def terminate(self, job_id: str) -> None:
        """Ask the supervisor to kill this process under ``job_id`` (cancelled)."""
        self.send(f"terminate {job_id}")

    def take_signal(self, **_: Any) -> None:
        """``worker_ready``: handle the supervisor's ``SIGUSR1`` (soft limits)."""
        signal.signal(signal.SIGUSR1, self.soft_limit)

    def soft_limit(self, signum: int, frame: FrameType | None) -> None:
        """``SIGUSR1`` from the supervisor: the running job's soft limit is up."""
        if self.job is not None:
            raise SoftTimeLimitExceeded()


def reporter_from_env() -> Reporter | None:
    """This consumer's reporter, when a ``procs`` supervisor started it."""
    fd = os.environ.pop(REPORT_FD_ENV, None)
    if fd is None:
        return None
    reporter = Reporter(int(fd))
    signals.task_prerun.connect(reporter.started, weak=False)
    signals.task_postrun.connect(reporter.ended, weak=False)
    # Once Celery is up: its worker takes SIGUSR1 for itself (traceback dumps) at start.
    signals.worker_ready.connect(reporter.take_signal, weak=False)
    return reporter
