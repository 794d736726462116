"""A worker process: a Celery worker for one profile, plus Conveyor's services."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from celery import signals

from conveyor.delayed import Mover
from conveyor.monitor.gpu import detect_gpus
from conveyor.scaling.health import heartbeat_file_for
from conveyor.worker import gpu
from conveyor.worker.cancel import CancelWatcher, load_revoked
from conveyor.worker.registry import Heartbeat
from conveyor.worker.rescue import Rescuer
from conveyor.worker.resources import run_start_hooks
from conveyor.worker.vitals import gpu_label, vitals_reader

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
    prefetch: int | None = None,
    max_tasks_per_child: int | None = None,
) -> None:
    """Run a Celery worker for ``profile_name`` in this process until it is stopped.

    Each argument overrides the profile's entry, which overrides the settings'.
    """
    profile = app.topology.profile(profile_name)
    selected = queues or list(profile.queues)
    for queue in selected:
        app.topology.queue(queue)
    concurrency = concurrency or app.settings.worker_concurrency or profile.concurrency
    hostname = name or worker_name(profile.name)
    celery_app = app.celery
    mover = Mover(app.redis, app.publish_spec, poll_s=app.settings.delayed_poll_s)
    # The transport records this worker's deliveries in its held set (the rescue's input).
    options = dict(celery_app.conf.broker_transport_options or {})
    options["conveyor_worker"] = hostname
    celery_app.conf.broker_transport_options = options
    gpus = gpu.visible_gpus(detect_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    # Before the pool forks, so every pool process knows (gpu="required" jobs).
    gpu.WORKER_GPUS = gpus
    rescuer = Rescuer(app.redis, hostname, app.settings.heartbeat_s, app.topology.queue_names())
    heartbeat = Heartbeat(
        app.redis,
        hostname,
        profile.name,
        selected,
        concurrency,
        app.settings.heartbeat_s,
        on_beat=rescuer.renew,
        after_beat=rescuer.rescue,
        on_failure=rescuer.beat_failed,
        status=vitals_reader(gpu_label(gpus)),
        beat_file=heartbeat_file_for(app.settings, hostname),
    )

    canceller = CancelWatcher(app.redis, celery_app, hostname, app.settings.cancel_grace_s)

    def started(**_: Any) -> None:
        mover.start()
        heartbeat.start()
        canceller.start()
        if profile.gpu != "none" and not gpus:
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
        canceller.stop()

    def process_init(**_: Any) -> None:
        run_start_hooks(app.worker_start_hooks)

    if app.worker_start_hooks:
        # Prefork: once in each pool process; threads and solo run jobs in this one.
        if (pool or profile.pool) == "prefork":
            signals.worker_process_init.connect(process_init, weak=False)
        else:
            run_start_hooks(app.worker_start_hooks)
    if gpus:
        signals.task_postrun.connect(gpu.release_gpu_memory, weak=False)
    signals.worker_ready.connect(started, weak=False)
    signals.worker_shutdown.connect(stopping, weak=False)
    try:
        # Revocations survive restarts: jobs cancelled earlier are discarded on receipt.
        load_revoked(app.redis, app.settings.result_expires_s)
    except Exception as exc:  # the broker may still be starting; the job state refuses them too
        log.warning("worker %s: could not load revoked jobs: %s", hostname, exc)
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
    prefetch = prefetch or profile.prefetch
    if prefetch is not None:
        argv += ["--prefetch-multiplier", str(prefetch)]
    max_tasks_per_child = max_tasks_per_child or profile.max_tasks_per_child
    if max_tasks_per_child is not None:
        argv += ["--max-tasks-per-child", str(max_tasks_per_child)]
    celery_app.worker_main(argv)
