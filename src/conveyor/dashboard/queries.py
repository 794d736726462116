"""What each dashboard page shows, gathered from the broker and the job store.

Functions here return plain data for the templates; they know nothing of HTTP.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, text

from conveyor import keys
from conveyor.api.context import ApiContext
from conveyor.api.metrics import recorder_lag
from conveyor.events import Event, EventKind, MalformedEvent
from conveyor.monitor import tasks
from conveyor.monitor.queues import QueueView, backlog_totals, queue_views
from conveyor.store.activity import Activity, activity
from conveyor.store.models import ApiKeyRow, table_prefix
from conveyor.worker.heartbeats import WorkerInfo, live_workers

log = logging.getLogger("conveyor.dashboard")

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: A job's timeline reads at most this many stream entries around its lifetime.
TIMELINE_SCAN = 20_000
#: The windows the jobs page filters ``created_at`` by: label → seconds.
WINDOWS = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}


@dataclass
class Overview:
    """The overview page."""

    health: dict[str, Any]
    queues: list[QueueView]
    running: dict[str, int]
    scheduled: dict[str, int]
    delayed: int
    reserved: int
    workers_by_profile: dict[str, int]
    lag: int | None
    activity: Activity
    counts: dict[str, int] = field(default_factory=dict)


def _by_queue(ctx: ApiContext, statuses: tuple[str, ...], tenant: str | None) -> dict[str, int]:
    """How many jobs of ``statuses`` each queue has (from the store's status index)."""
    store = ctx.store()
    # SQLite would rather walk the queue index to group, reading every row (seconds at
    # 1 M jobs); told to, it reads only the rows of these statuses.
    table = table_prefix() + "jobs"
    source = f"{table} INDEXED BY ix_{table}_status_created" if store.dialect == "sqlite" else table
    where = "status IN :statuses" + (" AND tenant = :tenant" if tenant is not None else "")
    query = text(f"SELECT queue, count(*) FROM {source} WHERE {where} GROUP BY queue")
    query = query.bindparams(bindparam("statuses", expanding=True))
    params: dict[str, Any] = {"statuses": list(statuses)}
    if tenant is not None:
        params["tenant"] = tenant
    with ctx.engine().connect() as connection:
        return {str(queue): int(count) for queue, count in connection.execute(query, params)}


def overview(ctx: ApiContext, tenant: str | None, window_s: float = 3600) -> Overview:
    """Queues, running and scheduled jobs, workers, health and the last hour's activity."""
    app = ctx.app
    lag = recorder_lag(ctx)
    store = ctx.store()
    now = time.time()
    delayed, reserved = backlog_totals(app.redis)
    slices = activity(store, now - window_s, now, 30, tenant)
    return Overview(
        health=tasks.health(app, ctx.check_store(), lag),
        queues=queue_views(app.redis, app.topology, app.settings.heartbeat_s),
        running=_by_queue(ctx, ("started", "retrying"), tenant),
        scheduled=_by_queue(ctx, ("scheduled",), tenant),
        delayed=delayed,
        reserved=reserved,
        workers_by_profile=dict(
            Counter(w.profile for w in live_workers(app.redis, app.settings.heartbeat_s))
        ),
        lag=lag,
        activity=slices,
        counts=slices.totals,
    )


@dataclass
class JobFilter:
    """The jobs page's filters, as read from its query string."""

    status: str | None = None
    type: str | None = None
    queue: str | None = None
    tenant: str | None = None
    window: str | None = None
    q: str | None = None

    def payload_match(self) -> tuple[str, str] | None:
        """``field=value`` in the search box, as a payload match."""
        if self.q and "=" in self.q:
            name, _, value = self.q.partition("=")
            if name.strip():
                return name.strip(), value.strip()
        return None

    def job_id(self) -> str | None:
        """The search box holds a job id."""
        text = (self.q or "").strip().lower()
        return text if UUID.match(text) else None


def list_jobs(
    ctx: ApiContext, filters: JobFilter, cursor: str | None, limit: int = 50
) -> tuple[list[Any], str | None]:
    """One page of jobs, newest first (keyset-paginated by ``cursor``)."""
    since = time.time() - WINDOWS[filters.window] if filters.window in WINDOWS else None
    records, next_cursor = ctx.store().list_jobs(
        status=filters.status,
        type=filters.type,
        queue=filters.queue,
        tenant=filters.tenant,
        since=since,
        limit=limit,
        cursor=cursor,
        payload_match=filters.payload_match(),
    )
    return records, next_cursor


@dataclass
class TimelineEntry:
    """One event of a job, as its detail page lists it."""

    at: float
    type: str
    detail: str
    #: For progress: how many updates this entry stands for (the latest is shown).
    updates: int = 1


def _describe(event: Event) -> str:
    kind = event.kind
    if kind is EventKind.PROGRESS:
        parts = [f"{event.progress or 0:.0f}%", event.stage, event.message]
        return " · ".join(str(p) for p in parts if p)
    if kind is EventKind.STARTED:
        deliveries = event.deliveries if event.has("deliveries") else "?"
        return f"attempt {event.attempt}, delivery {deliveries}" + (
            f" on {event.worker}" if event.worker else ""
        )
    if kind in (EventKind.RETRYING, EventKind.FAILED):
        text = f"{event.error_type or ''}: {event.error_message or ''}".strip(": ")
        if kind is EventKind.RETRYING and event.retry_in_s is not None:
            text += f" (again in {event.retry_in_s:.0f}s)"
        return text
    return str(event.message or "")


def timeline(ctx: ApiContext, state: Any) -> list[TimelineEntry]:
    """The job's events from the event stream (while it still holds them), oldest first."""
    start = int((state.created_at or time.time()) * 1000) - 1000
    end = int((state.finished_at or time.time()) * 1000) + 5000
    needle = f'"job_id":"{state.id}"'.encode()
    entries: list[TimelineEntry] = []
    scanned = malformed = 0
    reason = ""
    cursor = str(start)
    while scanned < TIMELINE_SCAN:
        batch: Any = ctx.app.redis.xrange(keys.EVENTS, min=cursor, max=str(end), count=2000)
        if not batch:
            break
        scanned += len(batch)
        for _, fields in batch:
            if needle not in fields.get(b"e", b""):
                continue
            try:
                event = Event.from_stream(fields)
            except MalformedEvent as exc:
                malformed += 1
                reason = str(exc)
                continue
            if event.job_id != state.id:
                continue
            entry = TimelineEntry(event.ts, event.kind.value, _describe(event))
            if entry.type == "progress" and entries and entries[-1].type == "progress":
                # A run of progress updates shows as its latest one.
                entry.updates = entries[-1].updates + 1
                entries[-1] = entry
            else:
                entries.append(entry)
        cursor = f"({batch[-1][0].decode()}"
        if len(batch) < 2000:
            break
    if malformed:
        log.warning(
            "job %s: skipped %d malformed event(s) in its timeline (last: %s)",
            state.id,
            malformed,
            reason,
        )
    if not entries:
        for stamp, kind in (
            (state.created_at, "queued"),
            (state.started_at, "started"),
            (state.finished_at, state.status),
        ):
            if stamp:
                entries.append(TimelineEntry(stamp, kind, "from the job store"))
    return entries


def workers(ctx: ApiContext) -> list[WorkerInfo]:
    """Live workers, by profile then name."""
    found = live_workers(ctx.app.redis, ctx.settings.heartbeat_s)
    return sorted(found, key=lambda w: (w.profile, w.name))


_TENANTS: dict[int, tuple[float, list[str]]] = {}


def known_tenants(ctx: ApiContext, max_age_s: float = 10.0) -> list[str]:
    """Tenants that hold API keys (what an admin can switch to), cached ``max_age_s``."""
    now = time.monotonic()
    cached = _TENANTS.get(id(ctx))
    if cached is not None and cached[0] > now:
        return cached[1]
    query = select(ApiKeyRow.tenant).where(ApiKeyRow.tenant.is_not(None)).distinct()
    with ctx.engine().connect() as connection:
        found = sorted(str(tenant) for (tenant,) in connection.execute(query))
    _TENANTS[id(ctx)] = (now + max_age_s, found)
    return found
