"""A worker process: a Celery worker for one profile, plus Conveyor's services."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from celery import signals

from conveyor.delayed import Mover
from conveyor.monitor.gpu import detect_gpus
from conveyor.worker.registry import Heartbeat

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.worker")


def worker_name(profile: str, index: int | None = None) -> str:
    """``PROFILE-N@host``; without an index, the process id stands in for N."""
    return f"{profile}-{index if index is not None else os.getpid()}@{socket.gethostname()}"


def run_worker(
    app: Conveyor,
    profile_name: str,
    *,
    concurrency: int | None = None,
    name: str | None = None,
    pool: str | None = None,
    queues: list[str] | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker for ``profile_name`` in this process until it is stopped."""
    profile = app.topology.profile(profile_name)
    selected = queues or list(profile.queues)
    for queue in selected:
        app.topology.queue(queue)
    concurrency = concurrency or app.settings.worker_concurrency or profile.concurrency
    hostname = name or worker_name(profile.name)
    celery_app = app.celery
    mover = Mover(app.redis, app.publish_spec, poll_s=app.settings.delayed_poll_s)
    heartbeat = Heartbeat(
        app.redis, hostname, profile.name, selected, concurrency, app.settings.heartbeat_s
    )

    def started(**_: Any) -> None:
        mover.start()
        heartbeat.start()
        if profile.gpu != "none" and not detect_gpus():
            log.warning("worker %s: no GPU found; profile %s runs on CPU", hostname, profile.name)
        log.info(
            "worker %s ready: queues %s, concurrency %d, pool %s",
            hostname,
            ",".join(selected),
            concurrency,
            pool or profile.pool,
        )

    def stopping(**_: Any) -> None:
        mover.stop()
        heartbeat.stop()

    signals.worker_ready.connect(started, weak=False)
    signals.worker_shutdown.connect(stopping, weak=False)
    argv = [
        "worker",
        "--hostname",
        hostname,
        "--queues",
        ",".join(selected),
        "--concurrency",
        str(concurrency),
        "--pool",
        pool or profile.pool,
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
    ]
    celery_app.worker_main(argv)
