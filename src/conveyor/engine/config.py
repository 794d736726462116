"""Settings and topology → a configured Celery app with production defaults."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from kombu import Exchange
from kombu import Queue as KombuQueue

from conveyor.engine.transport import TRANSPORT_PATH
from conveyor.errors import ConfigurationError
from conveyor.jobs import JobDefinition
from conveyor.settings import Settings
from conveyor.topology import Topology

#: Margin added to the longest hard time limit to get the visibility timeout.
VISIBILITY_MARGIN_S = 300.0


def visibility_timeout(
    settings: Settings, definitions: Iterable[JobDefinition], topology: Topology | None = None
) -> float:
    """A visibility timeout above every hard time limit, so no job runs twice for being slow.

    The hard limits counted are the settings', every job type's and every worker
    profile's in ``topology`` (``[profiles.NAME] time_limit``).
    ``CONVEYOR_VISIBILITY_TIMEOUT_S`` is taken as given; a job type or profile
    whose hard limit reaches it is a configuration error.
    """
    definitions = list(definitions)
    profiles = list(topology.profiles.values()) if topology is not None else []
    longest = max(
        [
            settings.time_limit_s,
            *(d.time_limit for d in definitions if d.time_limit),
            *(p.time_limit for p in profiles if p.time_limit),
        ]
    )
    chosen = settings.visibility_timeout_s
    if chosen is None:
        return longest * 1.25 + VISIBILITY_MARGIN_S
    for definition in definitions:
        if definition.time_limit is not None and definition.time_limit >= chosen:
            raise ConfigurationError(
                f"job {definition.name!r}: time_limit {definition.time_limit:g}s reaches "
                f"CONVEYOR_VISIBILITY_TIMEOUT_S ({chosen:g}s); it would be delivered twice"
            )
    for profile in profiles:
        if profile.time_limit is not None and profile.time_limit >= chosen:
            raise ConfigurationError(
                f"profiles.{profile.name}: time_limit {profile.time_limit:g}s reaches "
                f"CONVEYOR_VISIBILITY_TIMEOUT_S ({chosen:g}s); a job that runs to it "
                "would be delivered twice"
            )
    return chosen


def celery_config(
    settings: Settings, topology: Topology, broker_url: str, definitions: Iterable[JobDefinition]
) -> dict[str, Any]:
    """The Celery configuration Conveyor runs with (every choice made here, once)."""
    definitions = list(definitions)
    is_redis = broker_url.startswith(("redis://", "rediss://", "unix://"))
    transport_options: dict[str, Any] = {
        "visibility_timeout": visibility_timeout(settings, definitions, topology),
    }
    if is_redis:
        transport_options["queue_priorities"] = topology.queue_priorities()
    config: dict[str, Any] = {
        "broker_url": broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_timeout": settings.broker_connect_timeout_s,
        # JSON only: a pickled message is refused (logged and dropped), never run.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_compression": settings.message_compression,
        # Nothing lost: ack after the job, re-queue when the worker dies under it.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        "task_soft_time_limit": settings.soft_time_limit_s,
        "task_time_limit": settings.time_limit_s,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        # Results live in Conveyor's job state; Celery's backend only if one is configured.
        "result_backend": settings.result_backend,
        "task_ignore_result": settings.result_backend is None,
        "result_expires": settings.result_expires_s,
        # Flower sees every task event, but Conveyor emits them (conveyor.engine.events)
        # inside its own state-change round trip: Celery's per-event publishes from the
        # worker's main process would halve a prefork worker's throughput.
        # Worker heartbeats stay Celery's own.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "task_queues": [
            KombuQueue(q.name, Exchange(q.name, type="direct"), routing_key=q.name)
            for q in Topology.ordered(topology.queues.values())
        ],
        "task_default_queue": topology.default_queue,
        "task_create_missing_queues": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
    }
    if is_redis:
        config["broker_transport"] = TRANSPORT_PATH
    return config


def build_celery(
    settings: Settings, topology: Topology, broker_url: str, definitions: Iterable[JobDefinition]
) -> Celery:
    """A Celery app configured by :func:`celery_config` (tasks are registered by the caller)."""
    app = Celery("conveyor", set_as_current=False)
    app.conf.update(celery_config(settings, topology, broker_url, definitions))
    return app
