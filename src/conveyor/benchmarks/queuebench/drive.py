"""Drive one queue through the phases and print its figures as one JSON line.

``python -m queuebench.drive QUEUE --jobs N ...`` with ``QUEUEBENCH_URL`` and
``QUEUEBENCH_PROBE_DIR`` set. The queue's module, ``queuebench.<QUEUE>_jobs``, names
its workers and its client; the phases are the same for every queue:

1. single submit: ``singles`` no-op jobs submitted one call at a time, no worker running;
2. bulk enqueue: ``jobs`` no-op jobs the library's bulk way, still no worker;
3. start the workers on the full queue; no-op jobs/s is the steady rate between the
   10th and 90th percentile start (no worker boot, no tail);
4. after 1 s idle, ``latency_jobs`` jobs one at a time with a 5 ms gap (longer where
   the no-op rate is under 400 jobs/s: at most half that rate is offered): submit→start
   is the job's start time less the time just before the submit call;
5. ``io_jobs`` jobs that wait 10 ms (``time.sleep``, or ``asyncio.sleep`` where jobs are
   coroutines), bulk-enqueued to running workers: steady 10–90 % rate. A queue whose
   I/O workers differ from its no-op workers (another pool) gets them started now.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from types import ModuleType
from typing import Any, Protocol

from .figures import percentile, steady_rate
from .probe import PROBE_DIR_ENV, Tailer

#: Seconds a worker gets to stop on SIGTERM before its process group is killed.
STOP_GRACE_S = 5.0


class Client(Protocol):
    """What a queue module's ``make_client()`` returns."""

    def enqueue_bulk(self, kind: str, ids: range) -> None:
        """Enqueue jobs ``kind(i)`` for every ``i`` the library's bulk way."""

    def enqueue_one(self, kind: str, i: int) -> None:
        """Enqueue one job ``kind(i)``."""

    def close(self) -> None:
        """Release connections."""


class Workers:
    """Worker processes, each in a session of its own so that it can be stopped whole."""

    def __init__(self, argvs: list[list[str]], env: dict[str, str], log_path: str) -> None:
        self.argvs = argvs
        self.procs: list[subprocess.Popen[bytes]] = []
        with open(log_path, "ab") as log:
            for argv in argvs:
                log.write(f"\n$ {' '.join(argv)}\n".encode())
                log.flush()
                self.procs.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )

    def stop(self) -> None:
        """SIGTERM each worker; then SIGKILL what is left of its session (pool children)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the session this driver created
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


def _say(what: str, since: float) -> None:
    """A progress line on stderr (the driver's log), with the seconds the step took."""
    print(f"{time.strftime('%H:%M:%S')} {what} ({time.monotonic() - since:.1f} s)", file=sys.stderr)


def _rate(count: int, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def run(queue: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    """Run the phases for ``queue``; return its figures (``error`` set when a phase fell short)."""
    tail = Tailer(os.environ[PROBE_DIR_ENV])
    env = dict(os.environ, **getattr(queue, "WORKER_ENV", {}))
    log_path = os.path.join(args.work, "workers.log")
    out: dict[str, Any] = {
        "version": importlib.metadata.version(queue.DIST),
        "config": queue.CONFIG,
        "bulk_method": queue.BULK,
        "single_method": queue.SINGLE,
    }
    mark = time.monotonic()
    client: Client = queue.make_client()
    client.enqueue_one("noop", -1)  # opens the connections; i < 0 is not counted
    started = time.perf_counter()
    for i in range(args.singles):
        client.enqueue_one("noop", i)
    out["single_per_s"] = _rate(args.singles, time.perf_counter() - started)
    started = time.perf_counter()
    client.enqueue_bulk("noop", range(args.singles, args.singles + args.jobs))
    out["bulk_per_s"] = _rate(args.jobs, time.perf_counter() - started)
    _say("submitted", mark)
    mark = time.monotonic()
    total = args.singles + args.jobs
    workers = Workers(queue.worker_argv("noop"), env, log_path)
    try:
        records = tail.wait("n", total, args.timeout)
        out["noop_per_s"] = steady_rate([t for _, t in records])
        if len(records) < total:
            out["error"] = f"no-op: {len(records)}/{total} ran in {args.timeout:g}s"
            return out
        _say("no-op jobs ran (workers' start included)", mark)
        mark = time.monotonic()
        time.sleep(1.0)  # an idle pool, as a lone submit meets it
        # At most half the no-op rate, so that a slow machine measures an idle pool's
        # latency, not a backlog's.
        gap = max(0.005, 2.0 / out["noop_per_s"]) if out["noop_per_s"] else 0.005
        out["latency_gap_ms"] = gap * 1000.0
        submitted: dict[int, float] = {}
        for i in range(args.latency_jobs):
            submitted[i] = time.time()
            client.enqueue_one("stamp", i)
            time.sleep(gap)
        records = tail.wait("s", args.latency_jobs, args.timeout)
        latencies = [(t - submitted[i]) * 1000.0 for i, t in records]
        out["latency_p50_ms"] = percentile(latencies, 50)
        out["latency_p99_ms"] = percentile(latencies, 99)
        if len(records) < args.latency_jobs:
            out["error"] = f"latency: {len(records)}/{args.latency_jobs} ran"
            return out
        _say("latency jobs ran", mark)
        mark = time.monotonic()
        if not args.io_jobs:
            return out
        io_argv = queue.worker_argv("io")
        if io_argv != workers.argvs:
            workers.stop()
            workers = Workers(io_argv, env, log_path)
        client.enqueue_bulk("sleep10", range(args.io_jobs))
        records = tail.wait("z", args.io_jobs, args.timeout)
        out["io_per_s"] = steady_rate([t for _, t in records])
        if len(records) < args.io_jobs:
            out["error"] = f"10 ms I/O: {len(records)}/{args.io_jobs} ran"
        _say("I/O jobs ran", mark)
        return out
    finally:
        mark = time.monotonic()
        workers.stop()
        client.close()
        _say("workers stopped", mark)


def main() -> None:
    """Parse the arguments, run one queue, print its figures as JSON on the last line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("queue")
    parser.add_argument("--jobs", type=int, default=3000, help="bulk-enqueued no-op jobs")
    parser.add_argument("--singles", type=int, default=1000, help="no-op jobs submitted singly")
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--io-jobs", type=int, default=1000, help="0: skip the I/O phase")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--work", default=".", help="folder for the workers' log")
    args = parser.parse_args()
    # On SIGTERM (the harness's deadline) unwind, so that the workers are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    queue = importlib.import_module(f"{__package__}.{args.queue}_jobs")
    try:
        out = run(queue, args)
    except Exception as exc:  # one queue failing must not lose the others' rows
        out = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
