"""``conveyor bench --peers``: Conveyor beside the other Python queues, one run, one broker.

Every queue goes through the same phases (:mod:`conveyor.benchmarks.queuebench.drive`)
against one private Valkey started for the run (each queue on a database of its
own), with 2 worker processes (or 2 pool children), one queue after the other.
The other queues are not Conveyor's dependencies: each is measured if the peer
interpreter (``--peer-python``, by default this one) can import it, and named with
the command that installs it otherwise. Conveyor and plain Celery always run under
this interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import redis
from rich.table import Table

from conveyor.broker.embedded import EmbeddedBroker

Log = Callable[[str], Any]

#: The folder that holds the ``queuebench`` package, put on the drivers' ``PYTHONPATH``.
HARNESS_ROOT = Path(__file__).resolve().parent
#: Variables that could point a driver or a worker at a server this run did not start.
_FOREIGN_PREFIXES = ("CONVEYOR_", "CELERY_", "RQ_", "DRAMATIQ_", "TASKIQ_", "HUEY_")
_FOREIGN_NAMES = ("REDIS_URL", "REDIS_PASSWORD", "DATABASE_URL")


@dataclass(frozen=True)
class Peer:
    """A queue the harness knows how to drive."""

    name: str
    label: str
    modules: tuple[str, ...]
    install: str
    #: Runs under Conveyor's own interpreter (Conveyor itself, and Celery, its engine).
    own_python: bool = False


PEERS = (
    Peer("conveyor", "Conveyor", ("conveyor",), "pip install conveyor", own_python=True),
    Peer("celery", "Celery (plain)", ("celery",), "pip install 'celery[redis]'", own_python=True),
    Peer("huey", "Huey", ("huey", "redis"), "pip install huey redis"),
    Peer("dramatiq", "Dramatiq", ("dramatiq", "redis"), "pip install 'dramatiq[redis]'"),
    Peer("rq", "RQ", ("rq",), "pip install rq"),
    Peer("taskiq", "taskiq", ("taskiq", "taskiq_redis"), "pip install taskiq taskiq-redis"),
    Peer("arq", "arq", ("arq",), "pip install arq"),
)


@dataclass
class PeerResult:
    """One queue's figures (medians over the repetitions), or why it has none."""

    name: str
    label: str
    version: str = ""
    noop_per_s: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    io_per_s: float | None = None
    bulk_per_s: float | None = None
    single_per_s: float | None = None
    config: str = ""
    bulk_method: str = ""
    single_method: str = ""
    errors: list[str] = field(default_factory=list)
    #: Set when the queue was not run: what to install.
    skipped: str | None = None


FIGURES = (
    "noop_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "io_per_s",
    "bulk_per_s",
    "single_per_s",
)


@dataclass
class PeersRun:
    """What ``conveyor bench --peers`` measured, and on what."""

    results: list[PeerResult]
    jobs: int
    singles: int
    latency_jobs: int
    io_jobs: int
    reps: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    seconds: float


def installed(python: str, modules: list[str]) -> set[str]:
    """The ``modules`` that ``python`` can import (found on its path, not imported)."""
    code = (
        "import importlib.util, json, sys\n"
        "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
    )
    done = subprocess.run(
        [python, "-c", code, *modules], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return set()
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _driver_env(url: str, work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_NAMES
    }
    path = [str(HARNESS_ROOT), env.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in path if p),
        QUEUEBENCH_URL=url,
        QUEUEBENCH_PROBE_DIR=str(work / "probe"),
        CONVEYOR_HOME=str(work / "home"),
    )
    return env


def _drive(peer: Peer, python: str, url: str, work: Path, counts: dict[str, int]) -> dict[str, Any]:
    work.mkdir(parents=True)
    argv = [python, "-m", "queuebench.drive", peer.name, "--work", str(work)]
    for option, value in counts.items():
        argv += [f"--{option.replace('_', '-')}", str(value)]
    # Four phases of at most --timeout each, plus worker start and stop.
    limit = 4 * counts["timeout"] + 120
    with open(work / "driver.log", "wb") as log:
        driver = subprocess.Popen(
            argv, env=_driver_env(url, work), cwd=work, stdout=subprocess.PIPE, stderr=log
        )
        try:
            stdout, _ = driver.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            # SIGTERM lets the driver stop its workers (they run in sessions of their own).
            driver.terminate()
            try:
                driver.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.communicate()
            return {"error": f"driver still running after {limit}s"}
    lines = stdout.decode(errors="replace").strip().splitlines()
    if driver.returncode != 0 or not lines:
        tail = (work / "driver.log").read_text(errors="replace").strip().splitlines()[-3:]
        return {"error": f"driver exited with {driver.returncode}: {' / '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _median(peer: Peer, runs: list[dict[str, Any]]) -> PeerResult:
    result = PeerResult(peer.name, peer.label)
    for run in runs:
        for name in ("version", "config", "bulk_method", "single_method"):
            if run.get(name):
                setattr(result, name, run[name])
        if run.get("error"):
            result.errors.append(run["error"])
    for name in FIGURES:
        values = [run[name] for run in runs if run.get(name) is not None]
        setattr(result, name, statistics.median(values) if values else None)
    return result


def run_peers(
    jobs: int = 3000,
    latency_jobs: int = 200,
    io_jobs: int = 1000,
    singles: int | None = None,
    reps: int = 1,
    peer_python: str | None = None,
    timeout: float = 300.0,
    only: list[str] | None = None,
    log: Log = print,
) -> PeersRun:
    """Measure Conveyor and every installed peer against one private Valkey.

    With ``reps`` > 1 the queues take turns in each repetition and every figure is
    the median. ``timeout`` bounds each phase of each queue; ``only`` names the
    queues to run (default: all).
    """
    singles = max(10, jobs // 3) if singles is None else singles
    counts = {
        "jobs": jobs,
        "singles": singles,
        "latency_jobs": latency_jobs,
        "io_jobs": io_jobs,
        "timeout": int(timeout),
    }
    peer_python = peer_python or sys.executable
    load_before = os.getloadavg()
    began = time.monotonic()
    chosen: list[tuple[Peer, str]] = []
    results: dict[str, PeerResult] = {}
    for peer in [p for p in PEERS if not only or p.name in only]:
        python = sys.executable if peer.own_python else peer_python
        missing = set(peer.modules) - installed(python, list(peer.modules))
        if missing:
            where = "" if python == sys.executable else f" in {python}"
            reason = f"not installed{where} ({peer.install})"
            results[peer.name] = PeerResult(peer.name, peer.label, skipped=reason)
            log(f"{peer.name}: {reason}")
        else:
            chosen.append((peer, python))
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-peers-"))
    broker = EmbeddedBroker(work / "broker", durable=False)
    base = broker.start().rsplit("/", 1)[0]
    runs: dict[str, list[dict[str, Any]]] = {peer.name: [] for peer, _ in chosen}
    try:
        for rep in range(1, reps + 1):
            for db, (peer, python) in enumerate(chosen):
                log(f"{peer.name}: running" + (f" (repetition {rep}/{reps})" if reps > 1 else ""))
                url = f"{base}/{db}"
                # The server is this run's own: a repetition starts from an empty database.
                with redis.Redis.from_url(url) as client:
                    client.flushdb()
                run = _drive(peer, python, url, work / f"{peer.name}-{rep}", counts)
                if run.get("error"):
                    log(f"{peer.name}: {run['error']} (logs in {work})")
                runs[peer.name].append(run)
    finally:
        broker.stop()
        if not any(run.get("error") for each in runs.values() for run in each):
            shutil.rmtree(work, ignore_errors=True)
    for peer, _ in chosen:
        results[peer.name] = _median(peer, runs[peer.name])
    return PeersRun(
        [results[peer.name] for peer in PEERS if peer.name in results],
        jobs,
        singles,
        latency_jobs,
        io_jobs,
        reps,
        load_before,
        os.getloadavg(),
        time.monotonic() - began,
    )


def as_dict(run: PeersRun) -> dict[str, Any]:
    """The run as plain data (for ``--json``)."""
    data = {f.name: getattr(run, f.name) for f in fields(run) if f.name != "results"}
    data["results"] = [r.__dict__ for r in run.results]
    return data


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_peers(run: PeersRun) -> Table:
    """The queues that ran, one row each (the skipped ones are listed apart)."""
    table = Table(
        "queue",
        "no-op jobs/s",
        "submit→start p50 ms",
        "p99 ms",
        "10 ms I/O jobs/s",
        "bulk enqueue/s",
        "single submit/s",
        title=(
            f"{run.jobs:,} bulk + {run.singles:,} single no-op jobs, {run.latency_jobs} "
            f"latency jobs, {run.io_jobs:,} I/O jobs per queue; one private Valkey"
        ),
    )
    for r in run.results:
        if r.skipped is None:
            table.add_row(
                f"{r.label} {r.version}".strip(),
                _number(r.noop_per_s),
                _number(r.latency_p50_ms, 1),
                _number(r.latency_p99_ms, 1),
                _number(r.io_per_s),
                _number(r.bulk_per_s),
                _number(r.single_per_s),
            )
    return table


def summary_lines(run: PeersRun) -> list[str]:
    """What the table leaves out: how each queue ran, which are not installed, the load."""
    lines = []
    for r in run.results:
        if r.skipped is not None:
            lines.append(f"{r.name}: {r.skipped}")
            continue
        lines.append(f"{r.name}: {r.config}; bulk: {r.bulk_method}")
        lines += [f"{r.name}: error: {error}" for error in r.errors]
    before = ", ".join(f"{x:.1f}" for x in run.load_before)
    after = ", ".join(f"{x:.1f}" for x in run.load_after)
    lines.append(
        f"{os.cpu_count()} CPUs; load average {before} before, {after} after; "
        f"{run.seconds:.0f} s" + (f"; medians of {run.reps}" if run.reps > 1 else "")
    )
    return lines
