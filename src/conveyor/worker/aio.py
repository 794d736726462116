"""Async jobs: ``async def`` job functions, run on one event loop per process.

``@app.job`` wraps an ``async def`` function in :class:`AsyncJob`, which the
executor calls like any job function. The call hands the coroutine to this
process's event loop — one loop, started on first use in a daemon thread
(``conveyor-aio``) and reused for every async job the process runs, started
again in a forked pool process — and blocks the calling pool thread until the
coroutine ends. So async jobs run in every pool: one at a time per process in
``prefork`` and ``solo``, and as many at once as the pool has threads in
``threads`` (the I/O profile), all on the one loop.

Time limits, for an async job in any pool:

- at the **soft** limit its task is cancelled: the coroutine sees
  :class:`asyncio.CancelledError` at its current ``await`` (``try``/``finally``
  and ``async with`` clean up as usual) and the attempt ends with
  :class:`~conveyor.SoftTimeLimitExceeded`, retried by the job type's policy.
  A coroutine that catches the cancellation and returns a value succeeds, as a
  sync job that catches ``SoftTimeLimitExceeded`` does.
- at the **hard** limit, in ``prefork`` Celery kills the pool process, as for a
  sync job. In ``threads`` and ``solo`` (where Celery enforces no limit) the
  call stops waiting: the attempt ends with :class:`~conveyor.TimeLimitExceeded`
  and the coroutine, which ignored its cancellation or blocks the loop with
  sync code, is abandoned (logged; it cannot be killed without its process).

Cancellation: ``ctx.progress()`` raises :class:`~conveyor.JobCancelled` in a
cancelled job, as for sync jobs; in ``threads`` and ``solo`` the worker also
cancels a cancelled job's task at once (its coroutine sees ``CancelledError``),
and the job ends ``cancelled``. ``ctx`` methods are plain calls: each is one
quick broker round trip, safe to call from the coroutine (it holds the loop for
that round trip).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from conveyor.errors import JobCancelled, TransientError

if TYPE_CHECKING:
    from conveyor.jobs import JobContext

log = logging.getLogger("conveyor.worker")

#: The pool this process's worker runs (set by ``conveyor worker`` before the pool
#: starts; None in-process, e.g. :func:`conveyor.testing.drain`).
POOL: str | None = None

#: How long an interrupted call (worker shutdown) waits for its cancelled coroutine.
_INTERRUPT_GRACE_S = 2.0

_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None
#: Job id → its running coroutine, for cancellation (this process's async jobs).
_running: dict[str, _Run] = {}


def set_pool(pool: str) -> None:
    """Record the worker's pool (before it forks): in prefork, Celery kills at the hard limit."""
    global POOL
    POOL = pool


def process_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop, running in its own daemon thread (started on first use)."""
    global _loop
    current = _loop
    pid = os.getpid()
    if current is not None and current[0] == pid:
        return current[1]
    with _lock:
        if _loop is None or _loop[0] != pid:  # none yet, or inherited across a fork
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="conveyor-aio", daemon=True)
            thread.start()
            _loop = (pid, loop)
        return _loop[1]


def cancel_running(job_id: str) -> bool:
    """Cancel ``job_id``'s coroutine if it runs in this process; whether it did."""
    run = _running.get(job_id)
    if run is None:
        return False
    run.stop("cancelled")
    return True


class _Run:
    """One job's coroutine on the process loop, and why it was stopped (if it was)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], soft: float | None
    ) -> None:
        self.loop = loop
        self.coro = coro
        self.soft = soft
        self.done = threading.Event()
        self.task: asyncio.Task[Any] | None = None
        #: "soft", "hard", "cancelled" or "interrupted" once stopped; None otherwise.
        self.reason: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """In the loop: create the task and its soft-limit timer."""
        self.task = self.loop.create_task(self.coro)
        self.task.add_done_callback(self._finished)
        if self.soft is not None:
            self._timer = self.loop.call_later(self.soft, self._stop, "soft")

    def _finished(self, _: asyncio.Task[Any]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.done.set()

    def _stop(self, reason: str) -> None:
        if self.task is not None and not self.task.done():
            self.reason = self.reason or reason
            self.task.cancel()

    def stop(self, reason: str) -> None:
        """From any thread: cancel the task, remembering the first reason."""
        self.loop.call_soon_threadsafe(self._stop, reason)

    def outcome(self) -> Any:
        """The coroutine's return value, or the exception that ends the attempt."""
        task = self.task
        assert task is not None
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                raise exc
            return task.result()
        if self.reason == "soft":
            raise SoftTimeLimitExceeded(f"soft time limit ({self.soft:g}s) exceeded")
        if self.reason == "cancelled":
            raise JobCancelled("the job was cancelled")
        raise TransientError("the job's coroutine was cancelled")


class AsyncJob:
    """An ``async def`` job function, callable as a sync one ``(ctx, params) -> result``.

    Each call runs the coroutine on :func:`process_loop` under the delivery's time
    limits and returns its result (see the module docstring).
    """

    def __init__(self, func: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        functools.update_wrapper(self, func)
        self.func = func

    def __call__(self, ctx: JobContext, params: Any) -> Any:
        hard, soft = delivery_limits(ctx)
        run = _Run(process_loop(), self.func(ctx, params), soft)
        job_id = ctx.job_id
        _running[job_id] = run
        try:
            run.loop.call_soon_threadsafe(run.start)
            # In prefork Celery kills the process at the hard limit; elsewhere the
            # call stops waiting then.
            if not _wait(run, None if POOL == "prefork" else hard):
                run.stop("hard")
                log.error(
                    "job %s: its coroutine still runs %gs after it started (hard time "
                    "limit); abandoned on the event loop (sync code blocking the loop, or "
                    "a cancellation caught and ignored)",
                    job_id,
                    hard,
                )
                raise TimeLimitExceeded(
                    f"hard time limit ({hard:g}s) exceeded; the job's coroutine was abandoned"
                )
            return run.outcome()
        finally:
            if _running.get(job_id) is run:
                del _running[job_id]


def _wait(run: _Run, timeout: float | None) -> bool:
    """Wait for ``run`` to end, within ``timeout`` seconds; whether it ended.

    Celery's signal-based soft limit (prefork) arrives here as an exception: it
    cancels the task like the loop's own timer, and the wait goes on. Any other
    interruption (the worker shutting down) cancels the task and is re-raised.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return run.done.wait(left)
        except SoftTimeLimitExceeded:
            run.stop("soft")
        except BaseException:
            run.stop("interrupted")
            run.done.wait(_INTERRUPT_GRACE_S)
            raise


def delivery_limits(ctx: JobContext) -> tuple[float | None, float | None]:
    """``(hard, soft)`` seconds for this delivery: the submission's, else the job
    type's, else the worker's defaults (as Celery resolves them)."""
    execution = ctx._execution
    meta, definition = execution.meta, execution.definition
    conf = execution.app.celery.conf
    hard = meta.get("time_limit") or definition.time_limit or conf.task_time_limit
    soft = meta.get("soft_time_limit") or definition.soft_time_limit or conf.task_soft_time_limit
    return (
        float(hard) if hard else None,
        float(soft) if soft and (not hard or soft < hard) else None,
    )
