"""Cancellation in the worker: terminate a cancelled job that does not stop by itself.

``Job.cancel()`` marks the job ``cancelled`` (so a queued job never starts and a
running one stops at its next ``ctx.progress()``), adds its id to
``conveyor:revoked`` and announces it on the ``conveyor:cancelled`` channel.

Each worker's main process listens on that channel. When a job it is running is
cancelled and still runs ``CONVEYOR_CANCEL_GRACE_S`` later (it never reports
progress, or is stuck in native code), the worker terminates it with Celery's
own revoke-and-terminate (a ``revoke`` control command to itself, handled in the
worker's event loop): the pool process is killed with SIGKILL and replaced, the
message is acknowledged, and the job stays ``cancelled`` — never failed, never
retried. An async job running in this process (``threads`` or ``solo`` pool)
has its task cancelled on the announcement, without waiting for the grace period
(see :mod:`conveyor.worker.aio`).

At start, a worker loads the recent revocations into Celery's revoked set, so a
message of a job cancelled while no worker was running is discarded on receipt
(the job's state would refuse it too) — revocations survive worker restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from celery import Celery
from celery.worker import state as worker_state

from conveyor import keys
from conveyor.worker.aio import cancel_running

log = logging.getLogger("conveyor.worker")


def load_revoked(client: redis.Redis, max_age_s: float) -> int:
    """Put the job ids cancelled in the last ``max_age_s`` into Celery's revoked set."""
    ids = cast(list[bytes], client.zrangebyscore(keys.REVOKED, time.time() - max_age_s, "+inf"))
    for raw in ids:
        worker_state.revoked.add(raw.decode())
    return len(ids)


def running_here(job_id: str) -> bool:
    """Whether this worker runs ``job_id`` now (Celery's active requests)."""
    for _ in range(3):
        try:
            return any(req.id == job_id for req in list(worker_state.active_requests))
        except RuntimeError:  # the set changed while being copied
            continue
    return False


class CancelWatcher:
    """Terminates this worker's cancelled jobs that outlive the grace period."""

    def __init__(
        self,
        client: redis.Redis,
        celery_app: Celery,
        hostname: str,
        grace_s: float,
        terminate: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.celery_app = celery_app
        self.hostname = hostname
        self.grace_s = grace_s
        #: Kills the job's process (a ``procs`` consumer asks its supervisor); None:
        #: Celery's revoke-and-terminate.
        self.terminate = terminate
        self._pending: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Job ids this watcher terminated (for logs and tests).
        self.terminated: list[str] = []

    def _terminate_due(self) -> None:
        now = time.monotonic()
        for job_id, due in list(self._pending.items()):
            if due > now:
                continue
            del self._pending[job_id]
            if not running_here(job_id):
                continue
            log.warning(
                "job %s was cancelled and still runs after %gs; terminating its process",
                job_id,
                self.grace_s,
            )
            if self.terminate is not None:
                self.terminate(job_id)
            else:
                self.celery_app.control.revoke(
                    job_id, terminate=True, signal="SIGKILL", destination=[self.hostname]
                )
            self.terminated.append(job_id)

    def _listen(self) -> None:
        pubsub: Any = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(keys.CANCELLED_CHANNEL)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is not None and message.get("type") == "message":
                    job_id = message["data"].decode()
                    cancel_running(job_id)  # an async job of this process stops at once
                    self._pending.setdefault(job_id, time.monotonic() + self.grace_s)
                if self._pending:
                    self._terminate_due()
        finally:
            pubsub.close()

    def run(self) -> None:
        """Listen for cancellations until :meth:`stop`; reconnect after broker errors."""
        failing = False
        while not self._stop.is_set():
            try:
                self._listen()
            except redis.RedisError as exc:
                if not failing:
                    log.warning("cancel watcher cannot reach the broker: %s", exc)
                failing = True
                self._stop.wait(1.0)
            except Exception:
                log.exception("cancel watcher failed; restarting it")
                self._stop.wait(1.0)

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="conveyor-cancel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
