"""Runs the benchmark: enqueue rate, end-to-end throughput and submit→start latency.

Both systems get the same private Valkey (no persistence, as the peer
benchmark in ``shared/peerbench`` uses), 2 worker processes (one prefork worker
with 2 children; Conveyor also with its ``procs`` pool of 2 solo consumers), and
the same three phases:

1. enqueue N no-op jobs with no worker running (enqueue jobs/s);
2. start the workers and let them drain the N jobs (steady rate between the
   10th and 90th percentile completion, and first→last drain rate);
3. submit jobs one at a time with a 5 ms gap to an idle pool (latency from
   just before the submit call to the job's start: p50, p99).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from rich.table import Table

from conveyor import keys
from conveyor.app import Conveyor
from conveyor.broker.embedded import EmbeddedBroker
from conveyor.settings import Settings
from conveyor.testing import WorkerProcess, wait_until

Log = Callable[[str], Any]


@dataclass
class BenchResult:
    """One system's figures."""

    system: str
    jobs: int
    enqueue_per_s: float
    process_per_s: float
    drain_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    notes: str = ""


def _steady_rate(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    n = len(times)
    lo, hi = times[int(n * 0.1)], times[int(n * 0.9) - 1]
    steady = (int(n * 0.9) - 1 - int(n * 0.1)) / (hi - lo) if hi > lo else float("inf")
    drain = (n - 1) / (times[-1] - times[0]) if times[-1] > times[0] else float("inf")
    return steady, drain


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _conveyor(
    url: str, jobs: int, latency_jobs: int, home: Path, log: Log, pool: str = "prefork"
) -> BenchResult:
    home.mkdir(parents=True, exist_ok=True)
    app = Conveyor(Settings(redis_url=url, home=home))
    client = app.redis
    log(f"conveyor: enqueueing {jobs} diag.noop jobs")
    started = time.perf_counter()
    ids = [app.submit("diag.noop", {}).id for _ in range(jobs)]
    enqueue = jobs / (time.perf_counter() - started)
    worker = WorkerProcess(
        url,
        profile="processing",
        concurrency=2,
        pool=pool,
        loglevel="WARNING",
        log_path=home / "worker.log",
        env={"CONVEYOR_HOME": str(home)},
    )
    with worker:
        log("conveyor: draining")
        # 3 events per job (queued, started, succeeded) land in the stream.
        wait_until(lambda: client.xlen(keys.EVENTS) >= 3 * jobs, timeout=600, interval=0.2)
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), "finished_at")
        finished = [float(v) for v in pipe.execute() if v]
        process, drain = _steady_rate(finished)
        log(f"conveyor: latency, {latency_jobs} jobs one at a time")
        time.sleep(1.0)  # let the pool go idle, as the peer benchmark does
        latencies = []
        marks: list[tuple[str, float]] = []
        for _ in range(latency_jobs):
            before = time.time()
            marks.append((app.submit("diag.noop", {}).id, before))
            time.sleep(0.005)
        for job_id, before in marks:
            state = app.get_job(job_id).wait(timeout=60)
            assert state.started_at is not None
            latencies.append((state.started_at - before) * 1000)
    return BenchResult(
        f"conveyor (full tracking, {pool})",
        jobs,
        enqueue,
        process,
        drain,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        f"{pool} -c 2, prefetch 1, acks late, events + live state + stream per state change",
    )


def _read_probes(probe_dir: Path) -> dict[str, float]:
    seen: dict[str, float] = {}
    for path in probe_dir.glob("probe-*.txt"):
        for line in path.read_text().splitlines():
            tag, _, stamp = line.partition(" ")
            seen[tag] = float(stamp)
    return seen


def _plain_celery(url: str, jobs: int, latency_jobs: int, work: Path, log: Log) -> BenchResult:
    probe_dir = work / "probes"
    probe_dir.mkdir()
    from conveyor.benchmarks import plain_celery

    plain_celery.app.conf.update(broker_url=url, result_backend=url)
    log(f"celery: enqueueing {jobs} noop jobs (task.delay in a loop)")
    started = time.perf_counter()
    for i in range(jobs):
        plain_celery.noop.delay(f"t{i}")
    enqueue = jobs / (time.perf_counter() - started)
    # The plain Celery app reads these when its worker process imports it.
    env = dict(os.environ, PLAIN_CELERY_BENCH_URL=url, PLAIN_CELERY_BENCH_PROBE=str(probe_dir))
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "conveyor.benchmarks.plain_celery",
        "worker",
        "-P",
        "prefork",
        "-c",
        "2",
        "-l",
        "WARNING",
        "-n",
        "plain@%h",
    ]
    with open(work / "celery.log", "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        log("celery: draining")
        wait_until(
            lambda: sum(1 for t in _read_probes(probe_dir) if t.startswith("t")) >= jobs,
            timeout=600,
            interval=0.5,
        )
        process, drain = _steady_rate(
            [v for k, v in _read_probes(probe_dir).items() if k.startswith("t")]
        )
        log(f"celery: latency, {latency_jobs} jobs one at a time")
        time.sleep(1.0)
        marks = []
        for i in range(latency_jobs):
            before = time.time()
            plain_celery.noop.delay(f"l{i}")
            marks.append((f"l{i}", before))
            time.sleep(0.005)
        wait_until(
            lambda: sum(1 for t in _read_probes(probe_dir) if t.startswith("l")) >= latency_jobs,
            timeout=120,
        )
        probes = _read_probes(probe_dir)
        latencies = [(probes[tag] - before) * 1000 for tag, before in marks]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return BenchResult(
        "plain celery (defaults)",
        jobs,
        enqueue,
        process,
        drain,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        "prefork -c 2, prefetch 4, results in Redis",
    )


def run_bench(
    jobs: int = 10_000,
    latency_jobs: int = 500,
    reps: int = 1,
    log: Log = print,
    pools: tuple[str, ...] = ("prefork", "procs"),
) -> list[BenchResult]:
    """Run Conveyor (once per pool in ``pools``) and plain Celery ``reps`` times,
    alternating, against one private Valkey.

    Each figure is the median over the repetitions.
    """
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    broker = EmbeddedBroker(work / "home", durable=False)
    url = broker.start()
    base = url.rsplit("/", 1)[0]
    runs: dict[str, list[BenchResult]] = {pool: [] for pool in pools}
    runs["celery"] = []
    try:
        flush = redis.Redis.from_url(url)
        for rep in range(1, reps + 1):
            log(f"repetition {rep}/{reps}")
            for pool in pools:
                flush.flushall()
                home = work / f"{pool}{rep}"
                runs[pool].append(_conveyor(url, jobs, latency_jobs, home, log, pool))
            flush.flushall()
            probe = work / f"p{rep}"
            probe.mkdir()
            runs["celery"].append(_plain_celery(f"{base}/1", jobs, latency_jobs, probe, log))
        return [_median(results) for results in runs.values()]
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def _median(results: list[BenchResult]) -> BenchResult:
    first = results[0]

    def med(name: str) -> float:
        return float(statistics.median(float(getattr(r, name)) for r in results))

    notes = first.notes + (f"; median of {len(results)}" if len(results) > 1 else "")
    return BenchResult(
        first.system,
        first.jobs,
        med("enqueue_per_s"),
        med("process_per_s"),
        med("drain_per_s"),
        med("latency_p50_ms"),
        med("latency_p99_ms"),
        notes,
    )


def render_table(results: list[BenchResult]) -> Table:
    """The results as a table."""
    table = Table(
        "system", "jobs", "enqueue/s", "process/s (10–90%)", "drain/s", "p50 ms", "p99 ms", "config"
    )
    for r in results:
        table.add_row(
            r.system,
            str(r.jobs),
            f"{r.enqueue_per_s:,.0f}",
            f"{r.process_per_s:,.0f}",
            f"{r.drain_per_s:,.0f}",
            f"{r.latency_p50_ms:.1f}",
            f"{r.latency_p99_ms:.1f}",
            r.notes,
        )
    return table
