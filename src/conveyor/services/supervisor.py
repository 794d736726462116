"""The local stack that ``conveyor up`` runs: the broker, one worker per profile, and services.

Workers run as ``conveyor worker`` subprocesses in their own sessions (so a
Ctrl-C reaches only the supervisor, which then stops them in order). A process
that exits unexpectedly is started again, after a pause that doubles with each
recent exit (up to :data:`MAX_BACKOFF_S`): during a broker outage services exit
and come back until the broker does, and the stack waits with them. The stack
gives up only on its own configuration errors: a process that exits with the
CLI's configuration-error code (2) :data:`MAX_RESTARTS` times within
:data:`RESTART_WINDOW_S`. An embedded broker that dies is started again on the
same port with the same data directory (:meth:`Stack.watch_broker`).

Stopping is a warm shutdown first (running jobs finish), then a cold one after
the grace period, in which Celery hands every unacknowledged job back to its queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.broker.embedded import EmbeddedBroker, discover
from conveyor.errors import BrokerError, ConfigurationError
from conveyor.private import private_dir
from conveyor.services import stackfile
from conveyor.topology import Topology

if TYPE_CHECKING:
    from conveyor.settings import Settings

log = logging.getLogger("conveyor.services.supervisor")

RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 5
#: The longest pause before a process that keeps exiting is started again.
MAX_BACKOFF_S = 30.0
#: How long the stack's processes wait at start for an unreachable broker (a day).
BROKER_WAIT_S = 86400.0
#: The exit code of a ``conveyor`` command refused for its configuration or arguments.
CONFIG_EXIT = 2


@dataclass
class WorkerSpec:
    """One worker process the stack runs."""

    profile: str
    #: ``-c PROFILE=N`` given to ``up``; None lets the worker size itself
    #: (:mod:`conveyor.worker.sizing`).
    concurrency: int | None
    name: str
    queues: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """The ``conveyor`` arguments that run this worker."""
        sized = [] if self.concurrency is None else ["--concurrency", str(self.concurrency)]
        return ["worker", "--profile", self.profile, *sized, "--name", self.name]


@dataclass
class ServiceSpec:
    """A non-worker process of the stack (recorder, API, worker manager): ``conveyor ARGS``."""

    name: str
    argv: tuple[str, ...]

    def args(self) -> list[str]:
        """The ``conveyor`` arguments that run this service."""
        return list(self.argv)


@dataclass
class _Running:
    spec: WorkerSpec | ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    restarts: list[float] = field(default_factory=list)
    #: When an exited process is due to start again (monotonic), once its exit is seen.
    start_at: float | None = None


def plan_workers(
    topology: Topology,
    profiles: list[str] | None = None,
    sizes: dict[str, int] | None = None,
) -> list[WorkerSpec]:
    """One worker per profile; ``sizes`` (``-c PROFILE=N``) fixes a profile's pool size."""
    sizes = sizes or {}
    chosen = profiles or list(topology.profiles)
    for name in [*chosen, *sizes]:
        topology.profile(name)
    specs = []
    for name in chosen:
        profile = topology.profile(name)
        host = os.uname().nodename
        # PROFILE-N@host, N counting the profile's workers (one here), as the manager names them.
        specs.append(WorkerSpec(name, sizes.get(name), f"{name}-1@{host}", profile.queues))
    return specs


def plan_services(
    settings: Settings, api_host: str = "127.0.0.1", api_port: int = 8000
) -> list[ServiceSpec]:
    """The non-worker processes ``conveyor up`` runs beside the workers."""
    services: list[ServiceSpec] = []
    # The recorder: the job store's only writer (conveyor.store.recorder).
    services.append(ServiceSpec("recorder", ("recorder",)))
    if settings.autoscale:
        # The worker manager; it owns the workers of the profiles it scales
        # (conveyor.scaling.stack.hand_to_manager).
        services.append(ServiceSpec("autoscale", ("autoscale",)))
    # One beat (conveyor.services.beat): fires the schedules; a second one elsewhere stands by.
    services.append(ServiceSpec("beat", ("beat",)))
    # The HTTP API (conveyor.api), auth on: `conveyor keys create` makes a key.
    services.append(ServiceSpec("api", ("api", "--host", api_host, "--port", str(api_port))))
    return services


def already_up(settings: Settings) -> str | None:
    """Why ``conveyor up`` cannot start for this home: another one runs for it (or None) —
    its embedded broker, or a stack on a configured broker (:mod:`.stackfile`)."""
    home = settings.home_dir
    what = None
    broker = discover(home)
    if broker is not None and not settings.configured_broker_url:
        what = f"its broker: pid {broker['pid']}"
    else:
        stack = stackfile.running(home)
        if stack is not None:
            what = f"its stack: pid {stack['pid']}, broker {stack.get('broker')}"
    if what is None:
        return None
    return (
        f"Conveyor is already up for CONVEYOR_HOME={home} ({what}); stop it with Ctrl-C "
        "in its terminal, or use another CONVEYOR_HOME"
    )


class Stack:
    """Starts, watches and stops the local stack."""

    def __init__(
        self,
        settings: Settings,
        workers: list[WorkerSpec],
        services: list[ServiceSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.services = services or []
        self.home = settings.home_dir
        self.log_dir = self.home / "logs"
        self.broker: EmbeddedBroker | None = None
        self.broker_url = ""
        self._running: list[_Running] = []
        self._stopping = threading.Event()
        self._broker_down_since: float | None = None
        self._broker_retry_at = 0.0
        self._broker_pause = 0.5

    @property
    def embedded(self) -> bool:
        """Whether this stack runs its own broker."""
        return self.broker is not None

    def start(self) -> None:
        """Start (or reach) the broker, then every worker."""
        private_dir(self.home)
        private_dir(self.log_dir)
        configured = self.settings.configured_broker_url
        if configured:
            from conveyor.broker.connection import check_reachable

            check_reachable(configured, timeout_s=self.settings.broker_connect_timeout_s)
            self.broker_url = configured
        else:
            self.broker = EmbeddedBroker(self.home)
            self.broker_url = self.broker.start()
        stackfile.record(self.home, self.broker_url)
        # Services first: the recorder should be reading before the first job runs.
        specs: list[WorkerSpec | ServiceSpec] = [*self.services, *self.workers]
        for spec in specs:
            self._running.append(self._spawn(spec))

    def _spawn(
        self, spec: WorkerSpec | ServiceSpec, restarts: list[float] | None = None
    ) -> _Running:
        log_path = self.log_dir / f"{spec.name.split('@')[0]}.log"
        env = dict(os.environ, CONVEYOR_HOME=str(self.home))
        # Services started during a broker outage wait for it rather than exit.
        env.setdefault("CONVEYOR_BROKER_WAIT_S", str(BROKER_WAIT_S))
        if self.broker is not None:
            # The URL outlives the server (same port, same password): a process started
            # while the embedded broker restarts waits for it rather than finding none.
            env["REDIS_URL"] = self.broker_url
        argv = [sys.executable, "-m", "conveyor", *spec.args()]
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return _Running(spec, process, log_path, restarts or [])

    def processes(self) -> list[tuple[WorkerSpec, int, Path]]:
        """(spec, pid, log file) of each worker."""
        return [
            (r.spec, r.process.pid, r.log_path)
            for r in self._running
            if isinstance(r.spec, WorkerSpec)
        ]

    def service_processes(self) -> list[tuple[ServiceSpec, int, Path]]:
        """(spec, pid, log file) of each service."""
        return [
            (r.spec, r.process.pid, r.log_path)
            for r in self._running
            if isinstance(r.spec, ServiceSpec)
        ]

    def supervise(self, poll_s: float = 1.0) -> None:
        """Restart processes that exit unexpectedly, and the embedded broker, until
        :meth:`request_stop`."""
        while not self._stopping.wait(poll_s):
            self.watch_broker()
            for index, running in enumerate(self._running):
                code = running.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                recent = [t for t in running.restarts if now - t < RESTART_WINDOW_S]
                if running.start_at is None:
                    if code == CONFIG_EXIT and len(recent) >= MAX_RESTARTS:
                        raise ConfigurationError(
                            f"{running.spec.name} keeps exiting with a configuration error "
                            f"(code {code}); see {running.log_path}"
                        )
                    pause = min(MAX_BACKOFF_S, 2.0 ** len(recent) - 1)
                    running.start_at = now + pause
                    log.warning(
                        "%s exited with code %s; starting it again in %.0fs (see %s)",
                        running.spec.name,
                        code,
                        pause,
                        running.log_path,
                    )
                if now >= running.start_at:
                    self._running[index] = self._spawn(running.spec, [*recent, now])

    def watch_broker(self) -> None:
        """Start the embedded broker again if it died: same port, same data directory.

        Its append-only file brings back every write it acknowledged; clients keep
        the URL (same port, same password) and reconnect.
        """
        broker = self.broker
        if broker is None:
            return
        code = broker.exit_code()
        if code is None and broker.pid is not None:
            return
        now = time.monotonic()
        if self._broker_down_since is None:
            self._broker_down_since = now
            self._broker_retry_at, self._broker_pause = now, 0.5
            log.error(
                "the embedded broker (pid %s) exited with code %s; starting it again on the "
                "same port with its data in %s",
                broker.pid,
                code,
                broker.data_dir,
            )
        if now < self._broker_retry_at:
            return
        try:
            broker.restart()
        except BrokerError as exc:
            log.error(
                "the embedded broker did not start again (%s); next try in %.0fs",
                exc,
                self._broker_pause,
            )
            self._broker_retry_at = now + self._broker_pause
            self._broker_pause = min(self._broker_pause * 2, MAX_BACKOFF_S)
            return
        log.warning(
            "the embedded broker is back (pid %s) after %.1fs",
            broker.pid,
            time.monotonic() - self._broker_down_since,
        )
        self._broker_down_since = None

    def request_stop(self) -> None:
        """Make :meth:`supervise` return."""
        self._stopping.set()

    def stop(self, grace_s: float = 30.0) -> None:
        """Warm shutdown, cold shutdown after ``grace_s``, then stop the broker."""
        self._stopping.set()
        # Workers before services, so the recorder still records the last jobs' ends.
        self._running.sort(key=lambda r: isinstance(r.spec, ServiceSpec))
        self._signal_all(signal.SIGTERM)
        if not self._wait_all(grace_s):
            # Cold shutdown: Celery restores unacknowledged messages to their queues.
            self._signal_all(signal.SIGQUIT)
            if not self._wait_all(15.0):
                for running in self._running:
                    if running.process.poll() is None:
                        os.killpg(running.process.pid, signal.SIGKILL)
                self._wait_all(5.0)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        stackfile.clear(self.home)

    def _signal_all(self, signum: int) -> None:
        for running in self._running:
            if running.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    running.process.send_signal(signum)

    def _wait_all(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for running in self._running:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                running.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                return False
        return True
