"""I/O-bound jobs/s: 10 ms jobs on the I/O profile, measured as the peer benchmark does.

Two job types, each waiting ``seconds`` (10 ms by default) and doing nothing else:
``bench.io.sleep`` (``time.sleep``, a sync job on a pool thread) and
``bench.io.async_sleep`` (``await asyncio.sleep``, on the process's event loop).
A private Valkey (no persistence), the recorder, and 2 worker processes of the
``io`` profile (threads pool) run with full tracking (live state, events, Celery
events, orphan rescue). With the workers ready, ``jobs`` jobs are submitted one
after another; the figures are the steady rate between the 10th and 90th
percentile completion and the end-to-end rate (first submit → last finish), as
``shared/peerbench`` measures its peers' ``sleep10`` jobs.

Workers load this module's app (``CONVEYOR_APP=conveyor.benchmarks.io:app``) and
the ``conveyor.toml`` that :func:`io_config` writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel, Field

from conveyor import keys
from conveyor.app import Conveyor
from conveyor.broker.embedded import EmbeddedBroker
from conveyor.jobs import JobContext
from conveyor.settings import Settings
from conveyor.testing import WorkerProcess, wait_until

Log = Callable[[str], Any]

APP = "conveyor.benchmarks.io:app"
SYNC, ASYNC = "bench.io.sleep", "bench.io.async_sleep"


class SleepInput(BaseModel):
    """Wait ``seconds``."""

    seconds: float = Field(0.01, ge=0, le=60)


def sleep(ctx: JobContext, params: SleepInput) -> None:
    """Block the pool thread for ``seconds`` (a sync I/O wait)."""
    time.sleep(params.seconds)


async def async_sleep(ctx: JobContext, params: SleepInput) -> None:
    """Await ``seconds`` on the process's event loop."""
    await asyncio.sleep(params.seconds)


def make_app(settings: Settings | None = None) -> Conveyor:
    """An app with the two I/O job types on the ``io`` queue (no built-in packs)."""
    app = Conveyor(settings, packs=[])
    app.job(SYNC, queue="io", retries=0)(sleep)
    app.job(ASYNC, queue="io", retries=0)(async_sleep)
    return app


def io_config(path: Path, threads: int) -> Path:
    """Write a ``conveyor.toml`` with the ``io`` queue and profile (``threads`` per process)."""
    path.write_text(
        "[queues.io]\npriority = 3\n\n"
        f'[profiles.io]\nqueues = ["io"]\npool = "threads"\nconcurrency = {threads}\n',
        encoding="utf-8",
    )
    return path


@dataclass
class IoResult:
    """One run's figures."""

    job_type: str
    jobs: int
    threads: int
    steady_per_s: float
    e2e_per_s: float
    submit_per_s: float


def _steady(times: list[float]) -> float:
    times = sorted(times)
    lo, hi = int(len(times) * 0.1), int(len(times) * 0.9) - 1
    return (hi - lo) / (times[hi] - times[lo]) if times[hi] > times[lo] else float("inf")


def measure(
    url: str,
    job_type: str,
    *,
    jobs: int = 2000,
    workers: int = 2,
    threads: int = 64,
    seconds: float = 0.01,
    recorder: bool = True,
    preload: bool = True,
    work: Path,
    log: Log = print,
) -> IoResult:
    """Run ``jobs`` jobs of ``job_type`` on ``workers`` io workers against ``url``.

    With ``preload`` the jobs are submitted before the workers start (their rate is
    measured, not the submitting client's); without, while they run (the peer
    benchmark's ``sleep10`` phase, bound by the client's submit rate when that is
    the slower side). The end-to-end rate counts from the first submit.
    """
    work.mkdir(parents=True, exist_ok=True)
    config = io_config(work / "conveyor.toml", threads)
    env = {"CONVEYOR_HOME": str(work), "CONVEYOR_CONFIG": str(config), "CONVEYOR_PACKS": ""}
    app = make_app(Settings(redis_url=url, home=work, config_file=config))
    client = app.redis
    client.flushall()
    ids: list[str] = []
    started = submitted = 0.0
    if preload:
        started = time.time()
        ids = _submit(app, job_type, jobs, seconds)
        submitted = time.time()
    with ExitStack() as stack:
        if recorder:
            argv = [sys.executable, "-m", "conveyor", "recorder"]
            recorder_env = dict(os.environ, REDIS_URL=url, **env)
            stack.enter_context(spawned(argv, recorder_env, work / "recorder.log"))
        for index in range(workers):
            worker = WorkerProcess(
                url,
                profile="io",
                concurrency=threads,
                app=APP,
                loglevel="WARNING",
                log_path=work / f"worker-{index}.log",
                env=env,
            )
            stack.enter_context(worker)
        log(f"{job_type}: {jobs} jobs of {seconds * 1000:g} ms, {workers} × {threads} threads")
        if not preload:
            started = time.time()
            ids = _submit(app, job_type, jobs, seconds)
            submitted = time.time()
        wait_until(
            lambda: _finished(client, ids) >= jobs, timeout=600, interval=0.2, what="jobs done"
        )
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(keys.job(job_id), "finished_at")
        finished = [float(v) for v in pipe.execute() if v]
    return IoResult(
        job_type,
        jobs,
        threads,
        _steady(finished),
        jobs / (max(finished) - started),
        jobs / (submitted - started),
    )


def _submit(app: Conveyor, job_type: str, jobs: int, seconds: float) -> list[str]:
    return [app.submit(job_type, {"seconds": seconds}).id for _ in range(jobs)]


def _finished(client: redis.Redis, ids: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "status")
    return sum(1 for status in pipe.execute() if status == b"succeeded")


@contextmanager
def spawned(argv: list[str], env: dict[str, str], log_path: Path) -> Iterator[None]:
    """``argv`` running in its own session for the block (its output in ``log_path``),
    then stopped: SIGTERM, and SIGKILL to its group after 30 s."""
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def measure_celery(
    url: str,
    *,
    jobs: int = 2000,
    workers: int = 2,
    threads: int = 64,
    seconds: float = 0.01,
    work: Path,
    log: Log = print,
) -> IoResult:
    """The same run on plain Celery's threads pool (no tracking), the ratio's baseline."""
    from conveyor.benchmarks import io_celery

    probes = work / "probes"
    probes.mkdir(parents=True, exist_ok=True)
    redis.Redis.from_url(url).flushall()
    io_celery.app.conf.update(broker_url=url)
    started = time.time()
    for i in range(jobs):
        io_celery.sleep10.delay(f"t{i}", seconds)
    submitted = time.time()
    env = dict(os.environ, PLAIN_CELERY_BENCH_URL=url, PLAIN_CELERY_BENCH_PROBE=str(probes))
    log(f"plain celery: {jobs} jobs of {seconds * 1000:g} ms, {workers} × {threads} threads")
    with ExitStack() as stack:
        for index in range(workers):
            argv = [sys.executable, "-m", "celery", "-A", "conveyor.benchmarks.io_celery"]
            argv += ["worker", "-P", "threads", "-c", str(threads), "-l", "WARNING"]
            argv += [
                "-n",
                f"plain{index}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
            stack.enter_context(spawned(argv, env, work / f"celery-{index}.log"))
        finished = (
            wait_until(
                lambda: _done(_probe_times(probes), jobs), timeout=600, interval=0.5, what="celery"
            )
            or []
        )
    return IoResult(
        "plain celery threads",
        jobs,
        threads,
        _steady(finished),
        jobs / (max(finished) - started),
        jobs / (submitted - started),
    )


def _done(times: list[float], jobs: int) -> list[float] | None:
    return times if len(times) >= jobs else None


def _probe_times(probes: Path) -> list[float]:
    return [
        float(line.split()[1])
        for path in probes.glob("probe-*.txt")
        for line in path.read_text().splitlines()
        if line.count(" ") == 1
    ]


def run_io_bench(
    job_types: tuple[str, ...] = (SYNC, ASYNC),
    *,
    jobs: int = 2000,
    threads: int = 64,
    reps: int = 1,
    recorder: bool = True,
    preload: bool = True,
    celery: bool = True,
    log: Log = print,
) -> list[IoResult]:
    """Each job type ``reps`` times, alternating, on one private Valkey (every result).

    With ``celery``, each repetition also runs plain Celery's threads pool on the same
    jobs (preloaded), so Conveyor's figures come with a same-run ratio.
    """
    work = Path(tempfile.mkdtemp(prefix="conveyor-io-bench-"))
    broker = EmbeddedBroker(work / "broker", durable=False)
    url = broker.start()
    results: list[IoResult] = []
    try:
        for rep in range(reps):
            for job_type in job_types:
                run_dir = work / f"{job_type}-{rep}"
                results.append(
                    measure(
                        url,
                        job_type,
                        jobs=jobs,
                        threads=threads,
                        recorder=recorder,
                        preload=preload,
                        work=run_dir,
                        log=log,
                    )
                )
                log(str(results[-1]))
            if celery:
                results.append(
                    measure_celery(
                        url, jobs=jobs, threads=threads, work=work / f"celery-{rep}", log=log
                    )
                )
                log(str(results[-1]))
        return results
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access (by a worker loading CONVEYOR_APP), not at import.
    if name == "app":
        return make_app()
    raise AttributeError(name)
