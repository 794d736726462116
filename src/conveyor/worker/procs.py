"""The ``procs`` pool: one solo Celery consumer per process, watched for time limits.

Celery's prefork pool hands every job from the worker's main process to a pool
process and its result back, through pipes: on a small machine that costs a
no-op job more than its three broker round trips. The ``procs`` pool runs
``--concurrency`` complete workers instead, each a ``--pool solo`` consumer
(fetch, run, acknowledge in one process, nothing in between), under one
supervising process that keeps Celery's prefork guarantees:

* **Hard time limits.** Each consumer tells the supervisor, through a pipe, when a
  job starts (with its hard and soft limits) and when it ends. At the soft limit
  the supervisor sends ``SIGUSR1`` (``SoftTimeLimitExceeded`` inside the job, as
  in prefork); at the hard limit it kills the process, records the attempt's
  failure with :func:`~conveyor.worker.executor.record_hard_time_limit` (retried
  or dead-lettered, as in prefork), acknowledges the delivery and starts a new
  consumer.
* **Lost processes.** A consumer that dies (killed, out of memory) has its
  deliveries handed back to their queues at once, as ``task_reject_on_worker_lost``
  does for a prefork child, and is replaced.
* **Cancellation.** A cancelled job still running after the grace period is
  terminated the same way (its delivery acknowledged, the job left ``cancelled``).
* ``--max-tasks-per-child`` and ``CELERY_WORKER_MAX_MEMORY_PER_CHILD``: a consumer
  is replaced (warm shutdown, then a new one) after that many jobs, or when a job
  leaves it above that memory.

A ``procs`` worker has a fixed size: it does not autoscale (``autoscale`` is
Celery's prefork autoscaler; the worker manager still adds and removes workers).

Each consumer is a worker of its own (heartbeat, leases, rescue): the first
takes the worker's name (``PROFILE-PID@host`` by default, PID the supervisor's,
or ``--name``), the others add ``.2``, ``.3`` … to its first part. If the supervisor dies, its
consumers die with it (``PR_SET_PDEATHSIG``) and other workers rescue their
deliveries, as for a prefork worker's main process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import psutil
from celery.exceptions import TimeLimitExceeded

from conveyor import keys
from conveyor.worker.consumer import REPORT_FD_ENV
from conveyor.worker.rescue import UNACKED, UNACKED_INDEX, Rescuer

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.worker")

_PR_SET_PDEATHSIG = 1


@dataclass
class _Consumer:
    """One consumer process as the supervisor tracks it."""

    name: str
    proc: subprocess.Popen[bytes]
    reader: int
    buffer: bytes = b""
    job: str | None = None
    #: Monotonic deadlines of the running job (None: none / already signalled).
    soft_at: float | None = None
    hard_at: float | None = None
    hard_s: float = 0.0
    done: int = 0
    retiring: bool = False


def consumer_name(name: str, index: int) -> str:
    """The ``index``-th consumer's name (1-based) for a worker named ``name``."""
    if index == 1:
        return name
    local, at, host = name.partition("@")
    return f"{local}.{index}{at}{host}"


class Supervisor:
    """Runs ``concurrency`` solo consumers and enforces their jobs' time limits."""

    def __init__(
        self,
        app: Conveyor,
        argv: list[str],
        concurrency: int,
        name: str,
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self.app = app
        self.argv = argv
        self.concurrency = concurrency
        self.name = name
        self.max_tasks_per_child = max_tasks_per_child
        self.selector = selectors.DefaultSelector()
        self.consumers: dict[int, _Consumer] = {}
        self.stopping = False
        #: Job ids killed at their hard limit (for logs and tests).
        self.killed: list[str] = []

    # ----------------------------------------------------------------- processes

    def _spawn(self, index: int) -> None:
        reader, writer = os.pipe()
        name = consumer_name(self.name, index)
        argv = [*self.argv, "--name", name]
        env = dict(os.environ, **{REPORT_FD_ENV: str(writer)})
        # A session of its own: a terminal's Ctrl-C reaches it once, forwarded (twice
        # would be Celery's cold shutdown).
        proc = subprocess.Popen(
            argv,
            env=env,
            pass_fds=(writer,),
            preexec_fn=_die_with_parent,
            close_fds=True,
            start_new_session=True,
        )
        os.close(writer)
        os.set_blocking(reader, False)
        self.consumers[index] = _Consumer(name, proc, reader)
        self.selector.register(reader, selectors.EVENT_READ, index)

    def _reap(self, index: int) -> _Consumer:
        consumer = self.consumers.pop(index)
        self.selector.unregister(consumer.reader)
        os.close(consumer.reader)
        consumer.proc.wait()
        return consumer

    def _kill(self, index: int) -> _Consumer:
        self.consumers[index].proc.kill()
        return self._reap(index)

    def forward(self, signum: int, frame: FrameType | None = None) -> None:
        """Pass a stop signal on to every consumer; replace none from now on."""
        self.stopping = True
        for consumer in self.consumers.values():
            if consumer.proc.poll() is None:
                consumer.proc.send_signal(signum)

    # ------------------------------------------------------------------- reports

    def _read(self, index: int) -> None:
        consumer = self.consumers[index]
        while True:
            try:
                chunk = os.read(consumer.reader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            consumer.buffer += chunk
        *lines, consumer.buffer = consumer.buffer.split(b"\n")
        for line in lines:
            self._report(index, consumer, line.decode().split())

    def _report(self, index: int, consumer: _Consumer, words: list[str]) -> None:
        if not words:
            return
        if words[0] == "start":
            job, hard, soft = words[1], float(words[2]), float(words[3])
            now = time.monotonic()
            consumer.job, consumer.hard_s = job, hard
            consumer.hard_at = now + hard if hard > 0 else None
            consumer.soft_at = now + soft if 0 < soft < (hard or float("inf")) else None
        elif words[0] == "end":
            consumer.job = consumer.soft_at = consumer.hard_at = None
            consumer.done += 1
            if not consumer.retiring and self._spent(consumer):
                consumer.retiring = True
                consumer.proc.send_signal(signal.SIGTERM)
        elif (
            words[0] == "terminate"
            and consumer.job == words[1]
            and self.consumers.get(index) is consumer
        ):
            log.warning("job %s: terminating its process (cancelled)", words[1])
            job = words[1]
            dead = self._kill(index)
            self._settle(dead, job, None)
            if not self.stopping:
                self._spawn(index)

    def _spent(self, consumer: _Consumer) -> bool:
        """Whether a consumer that just finished a job is due for replacement: after
        ``--max-tasks-per-child`` jobs, or above ``CELERY_WORKER_MAX_MEMORY_PER_CHILD``."""
        limit = self.max_tasks_per_child
        if limit and consumer.done >= limit:
            return True
        max_kb = self.app.settings.worker_max_memory_per_child_kb
        if not max_kb:
            return False
        try:
            rss = psutil.Process(consumer.proc.pid).memory_info().rss
        except psutil.Error:
            return False
        return bool(rss > max_kb * 1024)

    # -------------------------------------------------------------------- limits

    def _check_limits(self) -> None:
        now = time.monotonic()
        for index, consumer in list(self.consumers.items()):
            if consumer.soft_at is not None and now >= consumer.soft_at:
                consumer.soft_at = None
                consumer.proc.send_signal(signal.SIGUSR1)
            if consumer.hard_at is not None and now >= consumer.hard_at:
                job, hard_s = consumer.job, consumer.hard_s
                self._read(index)
                if self.consumers.get(index) is not consumer or consumer.job != job:
                    continue  # it ended (or was terminated) meanwhile
                log.error(
                    "job %s: hard time limit (%gs) exceeded; killing its process", job, hard_s
                )
                dead = self._kill(index)
                assert job is not None
                self.killed.append(job)
                self._settle(dead, job, TimeLimitExceeded(hard_s))
                if not self.stopping:
                    self._spawn(index)

    def _settle(self, dead: _Consumer, job: str | None, exc: BaseException | None) -> None:
        """After a consumer is gone: record ``exc`` for ``job`` (a hard limit), acknowledge
        that delivery, and hand every other delivery it held back to its queue."""
        name = dead.name
        held = keys.worker_held(name)
        client = self.app.redis
        if job is not None:
            tag, message = _delivery_of(client, held, job)
            if exc is not None and message is not None:
                _record_limit(self.app, message, job, exc)
            if tag is not None:
                pipe = client.pipeline()
                pipe.zrem(UNACKED_INDEX, tag)
                pipe.hdel(UNACKED, tag)
                pipe.srem(held, tag)
                pipe.execute()
        rescuer = Rescuer(
            client, name, self.app.settings.heartbeat_s, self.app.topology.queue_names()
        )
        rescuer.release_all()
        client.zrem(keys.WORKERS, name)

    # ---------------------------------------------------------------------- loop

    def run(self) -> int:
        """Start the consumers and supervise them until a stop signal; the exit code."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(signum, self.forward)
        for index in range(1, self.concurrency + 1):
            self._spawn(index)
        worst = 0
        while self.consumers:
            deadlines = [
                t for c in self.consumers.values() for t in (c.soft_at, c.hard_at) if t is not None
            ]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.5
            for key, _ in self.selector.select(min(timeout, 0.5)):
                if key.data in self.consumers:
                    self._read(key.data)
            self._check_limits()
            for index, consumer in list(self.consumers.items()):
                code = consumer.proc.poll()
                if code is None:
                    continue
                self._read(index)
                dead = self._reap(index)
                if self.stopping:
                    worst = max(worst, code)
                    continue
                if not dead.retiring:
                    log.error(
                        "worker process %s exited (%s) under job %s; replacing it",
                        dead.proc.pid,
                        code,
                        dead.job,
                    )
                    self._settle(dead, None, None)
                self._spawn(index)
        return worst


def _die_with_parent() -> None:
    """In the child before exec: die when the supervisor dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the rescue still hands jobs back
        pass


def _delivery_of(client: Any, held: str, job: str) -> tuple[str | None, dict[str, Any] | None]:
    """The delivery tag and message of ``job`` among a consumer's held deliveries."""
    from kombu.utils.json import loads

    tags = [t.decode() for t in client.smembers(held)]
    if not tags:
        return None, None
    for tag, raw in zip(tags, client.hmget(UNACKED, tags), strict=True):
        if raw is None:
            continue
        message = loads(raw)[0]
        if (message.get("headers") or {}).get("id") == job:
            return tag, message
    return None, None


def _record_limit(app: Conveyor, message: dict[str, Any], job: str, exc: BaseException) -> None:
    """Record a hard time limit from the killed job's own message (as prefork's main
    process does from its request)."""
    from kombu.compression import decompress

    from conveyor.engine.message import message_body
    from conveyor.worker.executor import record_hard_time_limit

    headers = message.get("headers") or {}
    definition = app.definitions.get(headers.get("task", ""))
    if definition is None:
        return
    try:
        if headers.get("compression"):
            import base64
            import json

            raw = decompress(base64.b64decode(message["body"]), headers["compression"])
            body = json.loads(raw)
        else:
            body = message_body(message)
        args, kwargs = body[0], body[1]
    except (ValueError, TypeError, KeyError, IndexError):
        return
    payload = args[0] if args else None
    meta = dict((kwargs or {}).get("meta") or {})
    meta.setdefault("queue", app.queue_for(definition))
    record_hard_time_limit(app, definition, job, payload, meta, exc)


def run_procs(
    app: Conveyor,
    profile: str,
    name: str,
    concurrency: int,
    options: list[str],
    *,
    max_tasks_per_child: int | None = None,
    pidfile: str | None = None,
) -> int:
    """Run a ``procs`` worker: ``concurrency`` solo consumers of ``profile`` named after
    ``name``, started with the ``conveyor worker`` ``options`` given; the exit code."""
    if pidfile:
        with open(pidfile, "w") as out:
            out.write(f"{os.getpid()}\n")
    argv = [sys.executable, "-m", "conveyor", "worker", "--profile", profile]
    argv += ["--pool", "solo", "--concurrency", "1", *options]
    supervisor = Supervisor(app, argv, concurrency, name, max_tasks_per_child=max_tasks_per_child)
    log.info("worker %s: %d solo consumer processes (procs pool)", name, concurrency)
    try:
        return supervisor.run()
    finally:
        if pidfile:
            with contextlib.suppress(OSError):
                os.unlink(pidfile)
