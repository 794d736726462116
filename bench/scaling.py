"""Measure the worker manager: spike-to-first-job of new workers, and its own CPU at idle.

.venv/bin/python bench/scaling.py --poll 2 --jobs 150 --idle 60

1. A private Valkey and ``conveyor autoscale --profiles processing`` (local back
   end, ``processing`` = 1 process per worker, 2–6 workers) start; once the two
   minimum workers are live, ``--jobs`` ``diag.sleep`` jobs are submitted at once.
   Reported: the time from the spike to the scale-up decision, to each new
   worker's registration, and to the first job a new worker started (read from
   the event stream's ``started`` events).
2. After the backlog drains and the count is back at its minimum, the manager's
   own process (not its workers) is sampled for ``--idle`` seconds at the default
   10 s polling interval, and at ``--poll``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from conveyor import Conveyor, Settings
from conveyor.scaling import status
from conveyor.testing import embedded_broker, wait_until
from conveyor.worker.heartbeats import live_workers


def start_manager(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``conveyor autoscale --profiles processing`` in its own session."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", "autoscale", "--profiles", "processing"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Warm stop, then wait."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def live(app: Conveyor) -> dict[str, float]:
    """Live processing worker → when it started (its own report)."""
    return {
        w.name: w.started_at
        for w in live_workers(app.redis, app.settings.heartbeat_s)
        if w.profile == "processing"
    }


def first_starts(app: Conveyor, since: float) -> dict[str, float]:
    """Worker → time of the first ``started`` event it emitted after ``since``."""
    first: dict[str, float] = {}
    for _, fields in app.redis.xrange("conveyor:events", int(since * 1000), "+"):
        event: dict[str, Any] = json.loads(fields[b"e"])
        if event.get("type") == "started" and event.get("worker"):
            first.setdefault(event["worker"], float(event["ts"]))
    return first


def idle_cpu(pid: int, seconds: float) -> float:
    """CPU % of process ``pid`` alone (not its children) over ``seconds``."""
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / seconds


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--job-seconds", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp) / "broker") as url:
        config = Path(tmp) / "conveyor.toml"
        config.write_text("[profiles.processing]\nconcurrency = 1\nworkers = [2, 6]\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "CELERY_"))}
        env |= {
            "REDIS_URL": url,
            "CONVEYOR_HOME": str(Path(tmp) / "home"),
            "CONVEYOR_CONFIG": str(config),
            "CONVEYOR_AUTOSCALE_POLL_S": f"{args.poll:g}",
            "CONVEYOR_AUTOSCALE_DOWN_DELAY_S": "5",
            "CONVEYOR_HEARTBEAT_S": "1",
        }
        settings = Settings(redis_url=url, config_file=config, heartbeat_s=1.0)
        app = Conveyor(settings)
        log = Path(tmp) / "manager.log"
        manager = start_manager(env, log)
        try:
            minimum = wait_until(lambda: len(live(app)) == 2 and live(app), timeout=120)
            spike = time.time()
            jobs = [
                app.submit("diag.sleep", {"seconds": args.job_seconds}, queue="processing")
                for _ in range(args.jobs)
            ]
            submitted = time.time() - spike
            wait_until(
                lambda: status(app)["profiles"].get("processing", {}).get("desired", 0) > 2,
                timeout=60,
                interval=0.02,
            )
            decided = time.time() - spike
            wait_until(lambda: len(live(app)) >= 5, timeout=120, interval=0.05)
            registered = time.time() - spike
            for job in jobs:
                job.wait(timeout=600)
            firsts = first_starts(app, spike)
            new = {w: t - spike for w, t in firsts.items() if w not in minimum}
            print(f"submitted {args.jobs} jobs in {submitted:.2f}s (poll {args.poll:g}s)")
            print(f"spike → scale-up decision: {decided:.2f}s")
            print(f"spike → 5 workers live: {registered:.2f}s")
            for name, delay in sorted(new.items(), key=lambda kv: kv[1]):
                print(f"spike → first job on new worker {name}: {delay:.2f}s")
            if new:
                print(f"first new worker's first job: {min(new.values()):.2f}s after the spike")
            wait_until(lambda: len(live(app)) == 2, timeout=180)
        finally:
            stop(manager)
        for poll in (10.0, args.poll):
            manager = start_manager(env | {"CONVEYOR_AUTOSCALE_POLL_S": f"{poll:g}"}, log)
            try:
                wait_until(lambda: len(live(app)) == 2, timeout=120)
                time.sleep(poll)  # let start-up work finish before sampling
                cpu = idle_cpu(manager.pid, args.idle)
                print(f"manager idle CPU at poll {poll:g}s: {cpu:.2f}% of one core")
            finally:
                stop(manager)


if __name__ == "__main__":
    main()
