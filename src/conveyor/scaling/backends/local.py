"""The local back end: real ``conveyor worker`` processes on this machine.

Each worker is named ``PROFILE-N@host`` (the lowest free N) and logs to
``CONVEYOR_HOME/logs/PROFILE-N.log``. It runs in its own session, so one
worker's process group (main process and pool children) can be signalled
without touching the others or the manager.

Scale-down is Celery's warm shutdown (SIGTERM): the worker takes no new job,
finishes the running ones and exits. One still running after
``CONVEYOR_AUTOSCALE_GRACE_S`` gets a cold shutdown (SIGQUIT), in which Celery
hands its unacknowledged jobs back, and a SIGKILL 15 s later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from conveyor.private import private_dir
from conveyor.scaling.backends.base import BackendError, HealthEvent, Usage
from conveyor.scaling.health import forget_worker, heartbeat_ages, requeue_worker_jobs

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.scaling")

#: A worker that has not registered this long after its start is taken for hung.
STARTUP_TIMEOUT_S = 120.0
COLD_GRACE_S = 10.0
#: This many unexpected exits of one profile's workers within the window stop restarts.
MAX_CRASHES = 5
CRASH_WINDOW_S = 60.0


@dataclass
class LocalWorker:
    """One worker process this back end started."""

    profile: str
    index: int
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    draining_since: float | None = None
    cold: bool = False
    cpu_seen: tuple[float, float] | None = None

    @property
    def pid(self) -> int:
        """The worker's main process id."""
        return self.process.pid


class LocalBackend:
    """Starts and stops ``conveyor worker`` subprocesses for each profile."""

    name = "local"

    def __init__(
        self,
        app: Conveyor,
        *,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        grace_s: float | None = None,
        sizes: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        #: Profile → processes per worker, overriding the profile's concurrency.
        self.sizes = dict(sizes or {})
        self.settings = app.settings
        self.python = python
        self.grace_s = self.settings.autoscale_grace_s if grace_s is None else grace_s
        self.env = dict(env if env is not None else os.environ)
        self.env.setdefault("CONVEYOR_HOME", str(self.settings.home_dir))
        self.log_dir = self.settings.home_dir / "logs"
        self.host = socket.gethostname()
        self.workers: dict[str, LocalWorker] = {}
        self._cold = threading.Event()
        #: Profile → times its workers exited unexpectedly (crash-loop guard).
        self.crashes: dict[str, list[tuple[float, int | None, Path]]] = {}

    # ----------------------------------------------------------------- counts

    def active(self, profile: str) -> list[LocalWorker]:
        """The profile's workers that run and are not shutting down, oldest index first."""
        self.reap()
        return sorted(
            (w for w in self.workers.values() if w.profile == profile and w.draining_since is None),
            key=lambda w: w.index,
        )

    def current(self, profile: str) -> int:
        """How many of ``profile``'s workers run and are not shutting down."""
        return len(self.active(profile))

    def draining(self) -> list[LocalWorker]:
        """Workers in warm (or cold) shutdown."""
        return [w for w in self.workers.values() if w.draining_since is not None]

    def scale(self, profile: str, count: int) -> None:
        """Start or warm-stop workers until ``profile`` has ``count``."""
        if count < 0:
            raise BackendError(f"cannot run a negative number of workers ({count})")
        self.app.topology.profile(profile)
        active = self.active(profile)
        if count > len(active):
            self._check_crash_loop(profile)
        for _ in range(count - len(active)):
            self._start(profile)
        # Newest first: the oldest workers keep their warm caches and models.
        for worker in reversed(active[count:]):
            self._drain(worker)

    def _check_crash_loop(self, profile: str) -> None:
        now = time.time()
        recent = [c for c in self.crashes.get(profile, []) if now - c[0] < CRASH_WINDOW_S]
        self.crashes[profile] = recent
        if len(recent) >= MAX_CRASHES:
            _, code, log_path = recent[-1]
            raise BackendError(
                f"{profile} workers keep exiting ({len(recent)} in {CRASH_WINDOW_S:g}s, "
                f"last code {code}); not starting more — see {log_path}"
            )

    # ------------------------------------------------------------- processes

    def _free_index(self, profile: str) -> int:
        taken = {w.index for w in self.workers.values() if w.profile == profile}
        index = 1
        while index in taken:
            index += 1
        return index

    def _start(self, profile: str, index: int | None = None) -> LocalWorker:
        index = index or self._free_index(profile)
        name = f"{profile}-{index}@{self.host}"
        private_dir(self.log_dir)
        log_path = self.log_dir / f"{profile}-{index}.log"
        argv = [self.python, "-m", "conveyor", "worker", "--profile", profile, "--name", name]
        if profile in self.sizes:
            argv += ["--concurrency", str(self.sizes[profile])]
        # Otherwise the worker sizes itself (conveyor.worker.sizing: one rule everywhere).
        try:
            with open(log_path, "ab") as out:
                process = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=_term_with_parent,
                )
        except OSError as exc:
            raise BackendError(f"could not start a {profile} worker: {exc}") from exc
        worker = LocalWorker(profile, index, name, process, log_path, time.time())
        self.workers[name] = worker
        log.info("started worker %s (pid %d, log %s)", name, process.pid, log_path)
        return worker

    def _signal(self, worker: LocalWorker, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signum)

    def _drain(self, worker: LocalWorker) -> None:
        worker.draining_since = time.time()
        # SIGTERM to the main process only: Celery's warm shutdown lets the pool
        # children finish their jobs (a group-wide SIGTERM would stop them too).
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
        log.info("warm shutdown of worker %s", worker.name)

    def reap(self) -> None:
        """Forget exited workers; escalate shutdowns that outlast the grace period."""
        now = time.time()
        for name, worker in list(self.workers.items()):
            code = worker.process.poll()
            if code is not None:
                del self.workers[name]
                if worker.draining_since is None:
                    log.warning("worker %s exited unexpectedly (code %s)", name, code)
                    self.crashes.setdefault(worker.profile, []).append((now, code, worker.log_path))
                continue
            if worker.draining_since is None:
                continue
            waited = now - worker.draining_since
            if not worker.cold and waited > self.grace_s:
                log.warning("worker %s still busy after %gs: cold shutdown", name, self.grace_s)
                worker.cold = True
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGQUIT)
            elif worker.cold and waited > self.grace_s + COLD_GRACE_S:
                self._signal(worker, signal.SIGKILL)

    # ------------------------------------------------------------- measuring

    def usage(self, profile: str) -> Usage:
        """Mean CPU of the profile's workers (100 % = one core each) and the machine's memory."""
        now = time.monotonic()
        shares = []
        for worker in self.active(profile):
            busy = _tree_cpu_seconds(worker.pid)
            if busy is None:
                continue
            if worker.cpu_seen is not None:
                then, before = worker.cpu_seen
                if now > then:
                    shares.append(max(0.0, busy - before) / (now - then) * 100.0)
            worker.cpu_seen = (now, busy)
        cpu = min(100.0, sum(shares) / len(shares)) if shares else None
        return Usage(cpu_pct=cpu, memory_pct=psutil.virtual_memory().percent)

    # ---------------------------------------------------------------- health

    def check_health(self) -> list[HealthEvent]:
        """Replace workers that are frozen, silent or over their memory limit."""
        from conveyor.scaling.health import stale_after_s

        stale_s = stale_after_s(self.settings)
        limit_mb = self.settings.worker_memory_limit_mb
        ages = heartbeat_ages(self.app.redis)
        now = time.time()
        events = []
        for worker in [w for w in self.workers.values() if w.draining_since is None]:
            if worker.process.poll() is not None:
                continue
            reason = None
            age = ages.get(worker.name)
            frozen = _is_stopped(worker.pid)
            if age is not None and age > stale_s:
                reason = f"heartbeat {age:.1f}s old (limit {stale_s:g}s)"
                if frozen:
                    reason += ", process frozen (stopped)"
            elif age is None and now - worker.started_at > STARTUP_TIMEOUT_S:
                reason = f"not registered {STARTUP_TIMEOUT_S:g}s after start"
            elif limit_mb is not None:
                rss = _tree_rss(worker.pid)
                if rss is not None and rss > limit_mb * 1024 * 1024:
                    reason = f"memory {rss / 2**20:.0f} MiB over the {limit_mb:g} MiB limit"
            if reason is None:
                continue
            events.append(self._replace(worker, reason))
        return events

    def _replace(self, worker: LocalWorker, reason: str) -> HealthEvent:
        log.warning("worker %s is unhealthy (%s): replacing it", worker.name, reason)
        # A frozen process cannot act on a warm shutdown: kill the whole group
        # (SIGKILL works on stopped processes), then hand its jobs back at once.
        self._signal(worker, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=10)
        del self.workers[worker.name]
        requeued: list[str] = []
        try:
            requeued = requeue_worker_jobs(self.app, worker.name)
            forget_worker(self.app.redis, worker.name)
        except Exception as exc:  # keep replacing even if the broker hiccups
            log.warning("could not hand back the jobs of %s: %s", worker.name, exc)
        replacement = self._start(worker.profile, worker.index)
        return HealthEvent(
            profile=worker.profile,
            worker=worker.name,
            reason=reason,
            action=f"killed pid {worker.pid}; started {replacement.name} (pid {replacement.pid})",
            requeued=tuple(requeued),
        )

    # -------------------------------------------------------------- shutdown

    def request_cold(self) -> None:
        """Turn a warm :meth:`close` in progress (or the next one) into a cold one."""
        self._cold.set()

    def close(self, grace_s: float) -> None:
        """Stop every worker warm; cold after ``grace_s`` (or on :meth:`request_cold`)."""
        cold = self._cold.is_set()
        first = signal.SIGQUIT if cold else signal.SIGTERM
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(first)
        if not self._wait_all(grace_s, interrupt=None if cold else self._cold) and not cold:
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGQUIT)
            self._wait_all(COLD_GRACE_S)
        for worker in self.workers.values():
            if worker.process.poll() is None:
                self._signal(worker, signal.SIGKILL)
        self._wait_all(5.0)
        self.workers.clear()

    def _wait_all(self, timeout_s: float, interrupt: threading.Event | None = None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(w.process.poll() is not None for w in self.workers.values()):
                return True
            if interrupt is not None and interrupt.is_set():
                return False
            time.sleep(0.1)
        return all(w.process.poll() is not None for w in self.workers.values())


def _term_with_parent() -> None:
    """In the child before exec: get SIGTERM (a warm shutdown) if the manager dies.

    Workers run in their own sessions, so a manager killed with SIGKILL would
    otherwise leave them running unmanaged (Linux only; elsewhere a no-op).
    """
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _tree_cpu_seconds(pid: int) -> float | None:
    total = 0.0
    procs = _tree(pid)
    if not procs:
        return None
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _tree_rss(pid: int) -> int | None:
    procs = _tree(pid)
    if not procs:
        return None
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _is_stopped(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_STOPPED)
    except psutil.Error:
        return False
