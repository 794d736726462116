"""A worker process: a Celery worker for one profile, plus Conveyor's services."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.utils.nodenames import host_format

from conveyor.broker.malformed import count_refused_messages
from conveyor.compat.worker import CeleryCompat
from conveyor.engine import start as fetch_start
from conveyor.enqueue import mover as delayed_mover
from conveyor.errors import ConfigurationError
from conveyor.middleware.chain import call_hooks
from conveyor.middleware.leases import worker_rescuer
from conveyor.monitor.gpu import detect_gpus
from conveyor.scaling.health import heartbeat_file_for
from conveyor.timelimits import worker_limits
from conveyor.worker import aio, gpu, guard
from conveyor.worker.cancel import CancelWatcher, load_revoked
from conveyor.worker.consumer import reporter_from_env
from conveyor.worker.heartbeats import Heartbeat
from conveyor.worker.resources import run_start_hooks
from conveyor.worker.sizing import pool_size
from conveyor.worker.unknown import install as install_unknown_types
from conveyor.worker.vitals import gpu_label, vitals_reader

if TYPE_CHECKING:
    from celery import Celery

    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.worker")


def worker_name(profile: str, index: int | None = None) -> str:
    """``PROFILE-N@host``; without an index, the process id stands in for N."""
    return f"{profile}-{index if index is not None else os.getpid()}@{socket.gethostname()}"


def node_name(name: str | None, profile: str) -> str:
    """The worker's node name: ``name`` with Celery's ``%h``/``%n``/``%d`` expanded, as
    ``celery worker -n`` does, or ``PROFILE-PID@host`` without one."""
    return host_format(name) if name else worker_name(profile)


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
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    daemon: dict[str, str] | None = None,
) -> None:
    """Run a Celery worker for ``profile_name`` in this process until it is stopped.

    ``daemon`` passes Celery's own ``pidfile``/``logfile`` options through.

    Each argument overrides the profile's entry, which overrides the settings'.
    The time limits are the worker's defaults: a job type's own limits, and a
    submission's, win over them (see :func:`conveyor.timelimits.worker_limits`).
    """
    profile = app.topology.profile(profile_name)
    selected = queues or list(profile.queues)
    for queue in selected:
        app.topology.queue(queue)
    hard_limit, soft_limit = worker_limits(app.settings, profile, time_limit, soft_time_limit)
    size = pool_size(app.settings, profile, override=concurrency, pool=pool)
    concurrency = size.concurrency
    # Celery's node name patterns (%h, %n, %d), expanded as `celery worker -n` does.
    hostname = node_name(name, profile.name)
    celery_app = app.celery
    _check_visibility(celery_app.conf.broker_transport_options or {}, hard_limit, app)
    pool = pool or profile.pool
    if pool == "procs":
        raise SystemExit(
            _run_procs(
                app,
                profile.name,
                hostname,
                size.concurrency,
                selected,
                loglevel,
                (hard_limit, soft_limit),
                prefetch or profile.prefetch,
                max_tasks_per_child or profile.max_tasks_per_child,
                daemon or {},
            )
        )
    reporter = reporter_from_env()
    apply_worker_limits(celery_app, app, hard_limit, soft_limit)
    if (
        pool != "prefork"
        and reporter is None
        and (time_limit or soft_time_limit or profile.time_limit or profile.soft_time_limit)
    ):
        log.warning(
            "worker %s: time limits are enforced only in the prefork and procs pools, not %s",
            hostname,
            pool,
        )
    mover = delayed_mover(app, poll_s=app.settings.delayed_poll_s)
    install_unknown_types(celery_app, app, hostname)
    # The transport records this worker's deliveries in its held set (the rescue's input).
    options = dict(celery_app.conf.broker_transport_options or {})
    options["conveyor_worker"] = hostname
    # Its fetches also record the start of jobs that need no decision first.
    multiplier = prefetch or profile.prefetch or app.settings.worker_prefetch_multiplier
    options[fetch_start.OPTION] = fetch_start.options(app, pool=pool, prefetch=multiplier)
    celery_app.conf.broker_transport_options = options
    gpus = gpu.visible_gpus(detect_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    # Before the pool forks, so every pool process knows (gpu="required" jobs).
    gpu.WORKER_GPUS = gpus
    # The Leases middleware's renewal rides each heartbeat's round trip; its rescue follows it.
    rescuer = worker_rescuer(app, hostname)
    heartbeat = Heartbeat(
        app.redis,
        hostname,
        profile.name,
        selected,
        concurrency,
        app.settings.heartbeat_s,
        on_beat=rescuer.renew if rescuer is not None else None,
        after_beat=rescuer.rescue if rescuer is not None else None,
        on_failure=rescuer.beat_failed if rescuer is not None else None,
        status=vitals_reader(gpu_label(gpus)),
        beat_file=heartbeat_file_for(app.settings, hostname),
        types=list(app.definitions),
    )
    heartbeat.description["pool_size"] = size.describe()

    canceller = CancelWatcher(
        app.redis,
        celery_app,
        hostname,
        app.settings.cancel_grace_s,
        terminate=reporter.terminate if reporter is not None else None,
    )
    compat = CeleryCompat(app, selected)

    def started(**_: Any) -> None:
        mover.start()
        heartbeat.start()
        canceller.start()
        call_hooks(app.middleware, "on_worker_boot", app, hostname)
        compat.start()
        if profile.gpu != "none" and not gpus:
            log.warning("worker %s: no GPU found; profile %s runs on CPU", hostname, profile.name)
        log.info(
            "worker %s ready: queues %s, concurrency %s, pool %s, time limits %gs soft / %gs hard",
            hostname,
            ",".join(selected),
            size.describe(),
            "procs (solo consumer)" if reporter is not None else pool,
            soft_limit,
            hard_limit,
        )

    def stopping(**_: Any) -> None:
        call_hooks(app.middleware, "on_worker_shutdown", app, hostname)
        mover.stop()
        heartbeat.stop()
        canceller.stop()
        compat.stop()

    def process_init(**_: Any) -> None:
        run_start_hooks(app.worker_start_hooks)

    if app.worker_start_hooks:
        # Prefork: once in each pool process; threads and solo run jobs in this one.
        if pool == "prefork":
            signals.worker_process_init.connect(process_init, weak=False)
        else:
            run_start_hooks(app.worker_start_hooks)
    if gpus:
        signals.task_postrun.connect(gpu.release_gpu_memory, weak=False)
    signals.worker_ready.connect(started, weak=False)
    signals.worker_shutdown.connect(stopping, weak=False)
    count_refused_messages(app.redis)
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
        *(
            ["--autoscale", f"{size.autoscale[1]},{size.autoscale[0]}"]
            if size.autoscale
            else ["--concurrency", str(concurrency)]
        ),
        "--pool",
        pool,
        # The worker's defaults; a job type's limits (task options) and a submission's
        # (the message's timelimit header) take precedence inside Celery.
        "--time-limit",
        f"{hard_limit:g}",
        "--soft-time-limit",
        f"{soft_limit:g}",
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
    argv += [f"--{flag}={value}" for flag, value in (daemon or {}).items()]
    guard.mark_started_by_conveyor()
    aio.set_pool(pool or profile.pool)
    celery_app.worker_main(argv)


def _run_procs(
    app: Conveyor,
    profile: str,
    hostname: str,
    concurrency: int,
    queues: list[str],
    loglevel: str,
    limits: tuple[float, float],
    prefetch: int | None,
    max_tasks_per_child: int | None,
    daemon: dict[str, str],
) -> int:
    """Run the ``procs`` pool (:mod:`conveyor.worker.procs`): its consumers get this
    worker's resolved options."""
    from conveyor.worker.procs import run_procs

    options = ["--queues", ",".join(queues), "--loglevel", loglevel]
    options += ["--time-limit", f"{limits[0]:g}", "--soft-time-limit", f"{limits[1]:g}"]
    if prefetch is not None:
        options += ["--prefetch", str(prefetch)]
    if "logfile" in daemon:
        options += ["--logfile", daemon["logfile"]]
    return run_procs(
        app,
        profile,
        hostname,
        concurrency,
        options,
        max_tasks_per_child=max_tasks_per_child,
        pidfile=daemon.get("pidfile"),
    )


def apply_worker_limits(
    celery_app: Celery, app: Conveyor, hard_limit: float, soft_limit: float
) -> None:
    """Make ``(hard_limit, soft_limit)`` the defaults of every task this worker runs.

    Celery copies ``task_time_limit``/``task_soft_time_limit`` into each task when
    it is bound, and a task's own limit wins over the worker's ``--time-limit``;
    so each job type gets its own limit where it sets one, else the worker's
    (per limit). A submission's override travels in the message's ``timelimit``
    header and wins over both.
    """
    settings = app.settings
    celery_app.conf.task_time_limit = hard_limit
    celery_app.conf.task_soft_time_limit = soft_limit
    task: Any  # Celery types the limits as int
    for task in celery_app.tasks.values():
        definition = getattr(task, "conveyor_definition", None)
        if definition is not None:
            task.time_limit = definition.time_limit or hard_limit
            task.soft_time_limit = definition.soft_time_limit or soft_limit
            continue
        # Other tasks (dead letters, Celery's own) took the settings' when bound.
        if task.time_limit == settings.time_limit_s:
            task.time_limit = hard_limit
        if task.soft_time_limit == settings.soft_time_limit_s:
            task.soft_time_limit = soft_limit


def _check_visibility(transport_options: dict[str, Any], hard_limit: float, app: Conveyor) -> None:
    """Refuse a worker whose hard limit reaches the broker's visibility timeout."""
    timeout = transport_options.get("visibility_timeout")
    if timeout is None or hard_limit < timeout:
        return
    source = (
        "CONVEYOR_VISIBILITY_TIMEOUT_S"
        if app.settings.visibility_timeout_s is not None
        else "derived from the configured limits"
    )
    raise ConfigurationError(
        f"worker time limit {hard_limit:g}s reaches the broker's visibility timeout "
        f"({timeout:g}s, {source}); a job that runs to it would be delivered twice: "
        "raise CONVEYOR_VISIBILITY_TIMEOUT_S or set the limit as the profile's time_limit"
    )
