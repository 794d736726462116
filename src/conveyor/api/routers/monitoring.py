"""``/api/v1/monitoring/…``: task health, metrics, performance, stalled jobs; host resources."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from conveyor.api.deps import Admin, Context, Reader
from conveyor.api.metrics import recorder_lag
from conveyor.api.schemas import Health
from conveyor.monitor import resources, tasks

router = APIRouter(prefix="/monitoring", tags=["monitoring"])

Window = Annotated[float, Query(gt=0, le=30 * 86400, description="seconds")]


@router.get("/tasks/health", response_model=Health)
def tasks_health(ctx: Context, principal: Reader) -> dict[str, Any]:
    """Broker, store, recorder lag, live workers and backlog: ``ok``, ``degraded`` or ``down``."""
    return tasks.health(ctx.app, ctx.check_store(), recorder_lag(ctx))


@router.get("/tasks/metrics")
def tasks_metrics(ctx: Context, principal: Reader) -> dict[str, Any]:
    """Counts by status; throughput and failure rate over the last 1, 5 and 15 minutes."""
    return tasks.task_metrics(ctx.store(), principal.tenant_filter())


@router.get("/tasks/distribution")
def tasks_distribution(ctx: Context, principal: Reader, window_s: Window = 3600) -> dict[str, Any]:
    """Jobs created in the window by type, queue, worker and status."""
    return tasks.distribution(ctx.store(), principal.tenant_filter(), window_s)


@router.get("/tasks/performance")
def tasks_performance(ctx: Context, principal: Reader, window_s: Window = 3600) -> dict[str, Any]:
    """Wait and run time p50/p95/p99 by job type over the window."""
    return tasks.performance(ctx.store(), principal.tenant_filter(), window_s)


@router.get("/tasks/stalled")
def tasks_stalled(
    ctx: Context,
    principal: Reader,
    threshold_s: Annotated[float | None, Query(gt=0, le=86400)] = None,
) -> dict[str, Any]:
    """Started jobs with no progress and no worker heartbeat for ``threshold_s``."""
    threshold = threshold_s or stalled_threshold(ctx)
    jobs = tasks.stalled(ctx.app, ctx.store(), principal.tenant_filter(), threshold)
    return {"threshold_s": threshold, "count": len(jobs), "jobs": jobs}


@router.post("/tasks/cleanup")
def tasks_cleanup(
    ctx: Context,
    principal: Admin,
    requeue: Annotated[
        bool, Query(description="apply CONVEYOR_STALLED_POLICY to stalled jobs (else report)")
    ] = True,
) -> dict[str, Any]:
    """Apply retention now; re-queue or fail stalled jobs by policy (the ``upkeep.stalled`` job)."""
    from conveyor.monitor.stalled import handle_stalled

    retention = ctx.store().apply_retention()
    report = handle_stalled(ctx.app, ctx.store(), policy=None if requeue else "report")
    return {"retention": retention.model_dump(), **report.as_dict()}


@router.get("/resources")
def monitoring_resources(ctx: Context, principal: Reader) -> dict[str, Any]:
    """CPU, memory, disk and GPU of the hosts, and each live worker's memory and GPU."""
    return resources.resources(ctx.app)


@router.get("/resources/history")
def resources_history(
    ctx: Context,
    principal: Reader,
    host: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 60,
) -> dict[str, Any]:
    """Each host's latest published sample and its recent history, newest first."""
    from conveyor.monitor import publish

    client = ctx.app.redis
    latest = publish.latest(client)
    hosts = [host] if host else sorted(latest)
    return {
        "latest": {h: latest[h] for h in hosts if h in latest},
        "history": {h: publish.history(client, h, limit) for h in hosts},
    }


def stalled_threshold(ctx: Context) -> float:
    """Default stalled threshold (:func:`conveyor.monitor.stalled.default_threshold`)."""
    from conveyor.monitor.stalled import default_threshold

    return default_threshold(ctx.settings)
