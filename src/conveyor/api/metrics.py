"""``GET /metrics``: Prometheus text format, with celery-exporter's names where they mean the same.

So the celery-mixin dashboards and alerts work unchanged:

- ``celery_task_sent_total``, ``celery_task_started_total``,
  ``celery_task_succeeded_total``, ``celery_task_failed_total`` (+ ``exception``),
  ``celery_task_retried_total``, ``celery_task_revoked_total`` —
  labels ``name``, ``hostname``, ``queue_name``;
- ``celery_task_received_total`` (a worker took the job), ``celery_task_rejected_total``
  (a message refused on receipt: unknown job type, unrunnable arguments — also
  counted as failed, since Conveyor records it as a failed job);
- ``celery_task_runtime`` and ``celery_task_queue_wait_time`` (histograms, seconds) —
  ``name``, ``hostname``, ``queue_name``;
- ``celery_worker_tasks_active{hostname}`` (jobs running on each worker);
- ``celery_queue_length{queue_name}`` — summed over the queue's priority lists,
  which exporters that read one list miss; ``celery_worker_up{hostname}``;
  ``celery_active_consumer_count``, ``celery_active_process_count`` (worker
  processes consuming the queue) and ``celery_active_worker_count`` (workers)
  by ``queue_name``.

Conveyor's own: ``conveyor_queue_length{queue,priority}`` (per level),
``conveyor_jobs_delayed``, ``conveyor_jobs_reserved``, ``conveyor_workers{profile}``,
``conveyor_job_events_total{type,event}``, ``conveyor_job_wait_seconds`` (histogram),
``conveyor_recorder_lag`` (stream entries not yet in the store),
``conveyor_malformed_messages_total{queue}`` (messages rejected as not Celery's), and
the figure autoscalers scale on (KEDA's Prometheus scaler, HPA):
``conveyor_queue_backlog{queue}`` with its parts ``conveyor_queue_waiting``,
``_reserved``, ``_running``, ``_due_soon``.

Counters count the events this API process read since it started (Prometheus'
``rate()`` handles the reset on restart). Scrape one API replica for them: each
replica counts every event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from conveyor.api.context import ApiContext
from conveyor.broker.inspect import delayed_count, queue_depths, reserved_count
from conveyor.events import Event
from conveyor.scaling.backlog import QueueBacklog, measure
from conveyor.worker.heartbeats import live_workers

log = logging.getLogger("conveyor.api")

RUNTIME_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    float("inf"),
)

_TASK_LABELS = ("name", "hostname", "queue_name")


class EventMetrics:
    """Counters and histograms fed by the event hub."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, (*_TASK_LABELS, *extra), registry=registry)

        self.sent = counter("celery_task_sent", "Tasks sent (submitted or re-queued).")
        self.received = counter("celery_task_received", "Tasks received by a worker.")
        self.rejected = counter(
            "celery_task_rejected", "Messages refused on receipt (recorded as failed jobs)."
        )
        self.started = counter("celery_task_started", "Tasks started by a worker.")
        self.succeeded = counter("celery_task_succeeded", "Tasks that succeeded.")
        self.failed = counter("celery_task_failed", "Tasks that failed.", ("exception",))
        self.retried = counter("celery_task_retried", "Tasks scheduled for a retry.")
        self.revoked = counter("celery_task_revoked", "Tasks cancelled.")
        self.runtime = Histogram(
            "celery_task_runtime",
            "Task run time in seconds.",
            _TASK_LABELS,
            buckets=RUNTIME_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "conveyor_job_events",
            "Job events read from the event stream, by job type and event.",
            ("type", "event"),
            registry=registry,
        )
        self.wait = Histogram(
            "conveyor_job_wait_seconds",
            "Seconds from submission (or due time) to a worker starting the job.",
            ("type", "queue"),
            buckets=RUNTIME_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "celery_task_queue_wait_time",
            "Seconds a task waited in its queue before a worker started it.",
            _TASK_LABELS,
            buckets=RUNTIME_BUCKETS,
            registry=registry,
        )
        self.active = Gauge(
            "celery_worker_tasks_active",
            "Tasks a worker is running now.",
            ("hostname",),
            registry=registry,
        )
        self._created: dict[str, float] = {}
        #: Running job id → the worker running it (for ``celery_worker_tasks_active``).
        self._running: dict[str, str] = {}

    def _finish(self, job_id: str) -> None:
        host = self._running.pop(job_id, None)
        if host is not None:
            self.active.labels(host).dec()

    def observe(self, event: Event) -> None:
        """Count one event."""
        kind = event.kind.value
        name = event.job_type or ""
        queue = event.queue or ""
        host = event.worker or ""
        job_id = event.job_id
        labels = (name, host, queue)
        self.events.labels(name, kind).inc()
        if kind == "queued":
            self.sent.labels(*labels).inc()
            if len(self._created) < 100_000:
                self._created[job_id] = event.ts
        elif kind == "scheduled":
            self.sent.labels(*labels).inc()
        elif kind == "started":
            self.received.labels(*labels).inc()
            self.started.labels(*labels).inc()
            self._finish(job_id)
            if len(self._running) < 100_000:
                self._running[job_id] = host
                self.active.labels(host).inc()
            queued_at = self._created.pop(job_id, None)
            if queued_at is not None:
                waited = max(0.0, event.ts - queued_at)
                self.wait.labels(name, queue).observe(waited)
                self.queue_wait.labels(*labels).observe(waited)
        if kind in ("succeeded", "failed", "retrying", "cancelled"):
            self._finish(job_id)
        if kind == "succeeded":
            self.succeeded.labels(*labels).inc()
            if event.runtime_s is not None:
                self.runtime.labels(*labels).observe(event.runtime_s)
        elif kind == "failed":
            self.failed.labels(*labels, event.error_type or "").inc()
            if not event.deliveries:
                self.rejected.labels(*labels).inc()
            if event.runtime_s is not None:
                self.runtime.labels(*labels).observe(event.runtime_s)
        elif kind == "retrying":
            self.retried.labels(*labels).inc()
        elif kind == "cancelled":
            self.revoked.labels(*labels).inc()
            self._created.pop(job_id, None)


class BrokerCollector(Collector):
    """Gauges read from the broker (and the store's recorder lag) at scrape time."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        """Read queue lengths, workers and the recorder lag."""
        app = self.ctx.app
        client = app.redis
        celery_len = GaugeMetricFamily(
            "celery_queue_length",
            "Messages waiting in a queue (all priority levels).",
            labels=["queue_name"],
        )
        level_len = GaugeMetricFamily(
            "conveyor_queue_length",
            "Messages waiting in a queue at one priority level.",
            labels=["queue", "priority"],
        )
        consumers = GaugeMetricFamily(
            "celery_active_consumer_count",
            "Worker processes consuming a queue.",
            labels=["queue_name"],
        )
        worker_up = GaugeMetricFamily(
            "celery_worker_up", "1 while the worker's heartbeat is recent.", labels=["hostname"]
        )
        by_profile = GaugeMetricFamily(
            "conveyor_workers", "Live workers by profile.", labels=["profile"]
        )
        processes = GaugeMetricFamily(
            "celery_active_process_count",
            "Worker processes consuming a queue.",
            labels=["queue_name"],
        )
        worker_count = GaugeMetricFamily(
            "celery_active_worker_count", "Workers consuming a queue.", labels=["queue_name"]
        )
        try:
            depths = queue_depths(client, app.topology)
            workers = live_workers(client, app.settings.heartbeat_s)
            delayed = delayed_count(client)
            reserved = reserved_count(client)
            backlogs = measure(client, app.topology, app.settings.autoscale_poll_s)
        except Exception as exc:  # the broker is down: export what says so
            log.warning("metrics: broker unreachable: %s", exc)
            up = GaugeMetricFamily("conveyor_broker_up", "1 when the broker answers.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("conveyor_broker_up", "1 when the broker answers.")
        up.add_metric([], 1)
        yield up
        for depth in depths:
            celery_len.add_metric([depth.name], depth.total)
            for level, count in sorted(depth.levels.items()):
                level_len.add_metric([depth.name, str(level)], count)
            consuming = [w for w in workers if depth.name in w.queues]
            consumers.add_metric([depth.name], sum(w.concurrency for w in consuming))
            processes.add_metric([depth.name], sum(w.concurrency for w in consuming))
            worker_count.add_metric([depth.name], len(consuming))
        profiles: dict[str, int] = {}
        for worker in workers:
            worker_up.add_metric([worker.name], 1)
            profiles[worker.profile] = profiles.get(worker.profile, 0) + 1
        for profile in sorted(self.ctx.app.topology.profiles):
            by_profile.add_metric([profile], profiles.get(profile, 0))
        yield from (celery_len, level_len, consumers, processes, worker_count, worker_up)
        yield by_profile
        yield from backlog_gauges(backlogs.values())
        gauge = GaugeMetricFamily("conveyor_jobs_delayed", "Jobs waiting for their due time.")
        gauge.add_metric([], delayed)
        yield gauge
        gauge = GaugeMetricFamily(
            "conveyor_jobs_reserved", "Messages delivered to workers, not yet acknowledged."
        )
        gauge.add_metric([], reserved)
        yield gauge
        lag = recorder_lag(self.ctx)
        if lag is not None:
            gauge = GaugeMetricFamily(
                "conveyor_recorder_lag", "Events in the stream not yet recorded in the store."
            )
            gauge.add_metric([], lag)
            yield gauge
        yield malformed_metric(client)


def malformed_metric(client: Any) -> Metric:
    """``conveyor_malformed_messages_total{queue}``: messages workers rejected as malformed."""
    from conveyor.broker.malformed import counts

    family = CounterMetricFamily(
        "conveyor_malformed_messages",
        "Messages on a queue that were not Celery messages, rejected by a worker.",
        labels=["queue"],
    )
    for queue, count in sorted(counts(client).items()):
        family.add_metric([queue], count)
    return family


def backlog_gauges(backlogs: Iterable[QueueBacklog]) -> Iterator[Metric]:
    """``conveyor_queue_backlog{queue}`` and its parts (what autoscalers scale on)."""
    parts = {
        "backlog": "Waiting + reserved-not-started + delayed-and-due-soon jobs of a queue.",
        "waiting": "Messages waiting in a queue (all priority levels).",
        "reserved": "Messages delivered to a worker whose job has not started.",
        "running": "Jobs of a queue running now.",
        "due_soon": "Delayed jobs of a queue due within the autoscaler's poll interval.",
    }
    gauges = {
        part: GaugeMetricFamily(
            "conveyor_queue_backlog" if part == "backlog" else f"conveyor_queue_{part}",
            doc,
            labels=["queue"],
        )
        for part, doc in parts.items()
    }
    for entry in backlogs:
        figures = entry.as_dict()
        for part, gauge in gauges.items():
            gauge.add_metric([entry.queue], figures[part])
    yield from gauges.values()


def recorder_lag(ctx: ApiContext) -> int | None:
    """Events the recorder has yet to store, or None when that cannot be told."""
    try:
        from conveyor.store.recorder import recorder_lag as lag_of
    except ImportError:
        return None
    try:
        value = lag_of(ctx.app.redis)
    except Exception as exc:  # no consumer group yet, broker down…
        log.debug("recorder lag unavailable: %s", exc)
        return None
    return None if value is None else int(value)


def build_registry(ctx: ApiContext) -> tuple[CollectorRegistry, EventMetrics]:
    """A registry with the event counters and the broker collector."""
    # ``*_created`` series double every counter's lines and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=False)
    metrics = EventMetrics(registry)
    registry.register(BrokerCollector(ctx))
    return registry, metrics
