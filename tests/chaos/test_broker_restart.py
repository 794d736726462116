"""Chaos 2: the broker (embedded Valkey, append-only) SIGKILLed and restarted mid-run.

Every job whose submit returned ends ``succeeded``, and jobs submitted after the
restart run too: workers reconnect *and keep consuming* (celery#8030 reports
Celery workers that silently stop after a Redis reconnect).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from pathlib import Path

import redis

from conveyor import Conveyor, Settings, keys
from conveyor.broker.embedded import EmbeddedBroker
from conveyor.errors import BrokerError
from conveyor.testing import WorkerProcess, wait_until
from tests.chaos.conftest import HEARTBEAT_S, stop_together

BEFORE = 150
AFTER = 50
#: How long the broker stays down (``CHAOS_OUTAGE_S`` to try longer outages).
OUTAGE_S = float(os.environ.get("CHAOS_OUTAGE_S", "1"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _statuses(client: redis.Redis, ids: list[str]) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "status")
    return [(s or b"").decode() for s in pipe.execute()]


def test_broker_sigkilled_and_restarted_loses_no_accepted_job(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    home = tmp_path / "home"
    port = _free_port()
    broker = EmbeddedBroker(home, port=port)
    url = broker.start()
    client = redis.Redis.from_url(url)
    try:
        app = Conveyor(Settings(redis_url=url, home=tmp_path / "client"))
        for index in range(2):
            worker = WorkerProcess(
                url,
                profile="processing",
                concurrency=2,
                queues=["processing"],
                env={"CONVEYOR_HEARTBEAT_S": HEARTBEAT_S},
                log_path=tmp_path / f"worker-{index}.log",
            )
            workers.append(worker)
            worker.start()

        rng = random.Random(8)
        accepted: list[str] = []
        refused = 0
        stop = threading.Event()

        def submitter() -> None:
            # Keeps submitting through the outage; only accepted jobs count.
            nonlocal refused
            while not stop.is_set() and len(accepted) < BEFORE:
                try:
                    seconds = round(rng.uniform(0.05, 0.3), 3)
                    accepted.append(app.submit("diag.sleep", {"seconds": seconds}).id)
                except BrokerError:
                    refused += 1
                    time.sleep(0.05)
                time.sleep(0.01)

        thread = threading.Thread(target=submitter, daemon=True)
        thread.start()
        wait_until(
            lambda: len(accepted) > 40 and "succeeded" in _statuses(client, accepted[:20]),
            timeout=60,
            what="jobs running",
        )
        broker._server._process.kill()  # SIGKILL: no shutdown, no final AOF rewrite
        broker._server._process.wait(timeout=10)
        killed_at = time.monotonic()
        time.sleep(OUTAGE_S)
        broker = EmbeddedBroker(home, port=port)
        assert broker.start() == url  # same port, same data directory, same password
        restarted_s = time.monotonic() - killed_at
        thread.join(timeout=120)
        stop.set()

        after = [app.submit("diag.noop", {}).id for _ in range(AFTER)]
        wait_until(
            lambda: _statuses(client, after).count("succeeded") == AFTER,
            timeout=60,
            interval=0.2,
            what="jobs submitted after the restart to run",
        )
        try:
            wait_until(
                lambda: _statuses(client, accepted).count("succeeded") == len(accepted),
                timeout=60,
                interval=0.2,
                what=f"all {len(accepted)} accepted jobs to succeed",
            )
        except AssertionError:
            statuses = _statuses(client, accepted)
            stuck = [i for i, s in zip(accepted, statuses, strict=True) if s != "succeeded"]
            detail = {
                "statuses": {s: statuses.count(s) for s in set(statuses)},
                "stuck": {i: client.hgetall(keys.job(i)) for i in stuck[:5]},
                "unacked": client.hlen("unacked"),
                "held": {k: client.smembers(k) for k in client.keys("conveyor:held:*")},
                "queued": client.llen("processing:3"),
            }
            raise AssertionError(f"accepted jobs lost or stuck: {detail}") from None
        deliveries = [int(client.hget(keys.job(i), "deliveries") or 0) for i in accepted]
        print(
            f"\nchaos/broker-restart: broker SIGKILLed with {len(accepted)} jobs accepted "
            f"({refused} submits refused during the outage), back after {restarted_s:.1f}s; "
            f"all accepted jobs succeeded, {sum(d > 1 for d in deliveries)} delivered twice; "
            f"{AFTER} jobs submitted after the restart ran"
        )
    finally:
        stop_together(workers)
        workers.clear()
        client.close()
        broker.stop()
