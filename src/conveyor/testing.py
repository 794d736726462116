"""Helpers to test jobs against real servers: an embedded broker and real worker processes.

Conveyor's own suite uses them, and so can yours::

    from conveyor.testing import embedded_broker, WorkerProcess, wait_until

    with embedded_broker(tmp_path) as url:
        with WorkerProcess(url, profile="processing", app="myproject.jobs:app"):
            job = app.submit("reports.build", {...})
            assert job.wait(timeout=30).status == "succeeded"
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis

from conveyor import keys
from conveyor.broker.embedded import EmbeddedBroker

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")
        time.sleep(interval)


@contextmanager
def embedded_broker(home: Path, port: int | None = None) -> Iterator[str]:
    """A private Valkey server in ``home`` for the duration of the block; yields its URL."""
    broker = EmbeddedBroker(home, port=port)
    url = broker.start()
    try:
        yield url
    finally:
        broker.stop()


class WorkerProcess:
    """A real ``conveyor worker`` subprocess, started in its own session so it can be killed."""

    def __init__(
        self,
        broker_url: str,
        *,
        profile: str = "processing",
        concurrency: int = 1,
        queues: list[str] | None = None,
        app: str | None = None,
        pool: str | None = None,
        name: str | None = None,
        loglevel: str = "INFO",
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.argv = [
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "--profile",
            profile,
            "--concurrency",
            str(concurrency),
        ]
        if queues:
            self.argv += ["--queues", ",".join(queues)]
        if pool:
            self.argv += ["--pool", pool]
        self.name = name or f"{profile}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        self.argv += ["--name", self.name, "--loglevel", loglevel]
        self.env = dict(os.environ, REDIS_URL=broker_url, **(env or {}))
        if app:
            self.env["CONVEYOR_APP"] = app
        self.log_path = log_path or Path(f"/tmp/conveyor-worker-{os.getpid()}-{id(self)}.log")
        self.process: subprocess.Popen[bytes] | None = None
        self._client = redis.Redis.from_url(broker_url)

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and wait until it consumes."""
        self.log_path.write_bytes(b"")
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        wait_until(
            self._ready, timeout=timeout, interval=0.1, what=f"worker ready ({self.log_path})"
        )
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
        return self._client.zscore(keys.WORKERS, self.name) is not None

    def log(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The worker's main process id."""
        assert self.process is not None
        return self.process.pid

    def close(self) -> None:
        """Release the client used to watch the worker."""
        self._client.close()

    def stop(self, timeout: float = 30.0) -> int | None:
        """Warm shutdown (SIGTERM); SIGKILL the whole group if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (main process and pool children)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        self.close()


def drain(
    app: Any,
    *,
    queues: list[str] | None = None,
    max_jobs: int = 10_000,
    delayed_within_s: float | None = None,
) -> list[str]:
    """Run every waiting job of ``app`` in this process; return the job ids run.

    Jobs go through the real executor and middleware against the real broker
    (state changes, events, retries, dead letters), without a worker process: a
    team's unit tests of its own jobs run in milliseconds. Pass
    ``delayed_within_s`` to also run delayed jobs and retries due within that
    many seconds. Time limits, the pool and heartbeats need a real worker
    (:class:`WorkerProcess`).
    """
    from conveyor.worker.inline import run_waiting

    return run_waiting(app, queues=queues, max_jobs=max_jobs, delayed_within_s=delayed_within_s)
