"""``/api/v1/queues`` (and the older ``/api/v1/generate/queue/status`` path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from conveyor.api.deps import Admin, App, Reader
from conveyor.api.schemas import BacklogOverview, QueueBacklog, QueuesOverview, QueueStatus
from conveyor.errors import NotFound
from conveyor.monitor.queues import backlog_totals, queue_views
from conveyor.scaling.backlog import for_queues, measure

router = APIRouter(tags=["queues"])


@router.get("/queues", response_model=QueuesOverview)
def list_queues(app: App, principal: Reader) -> QueuesOverview:
    """Per queue: waiting messages per priority level, oldest message age, consumers."""
    views = queue_views(app.redis, app.topology, app.settings.heartbeat_s)
    delayed, reserved = backlog_totals(app.redis)
    return QueuesOverview(
        queues=[
            QueueStatus(
                name=v.name,
                priority=v.priority,
                length=v.length,
                levels={str(k): n for k, n in sorted(v.levels.items())},
                oldest_age_s=v.oldest_age_s,
                consumers=v.consumers,
                workers=v.workers,
            )
            for v in views
        ],
        total=sum(v.length for v in views),
        delayed=delayed,
        reserved=reserved,
    )


@router.get("/generate/queue/status", response_model=QueuesOverview)
def queue_status(app: App, principal: Reader) -> QueuesOverview:
    """The same as ``GET /queues``, at the path existing generation clients call."""
    return list_queues(app, principal)


@router.get("/queues/backlog", response_model=BacklogOverview)
def queue_backlog(
    app: App,
    principal: Reader,
    queue: Annotated[list[str] | None, Query(description="Queues to sum (default: all)")] = None,
) -> BacklogOverview:
    """The summed backlog (waiting + reserved + due soon) for KEDA's metrics-api scaler.

    ``?queue=generation-high&queue=generation`` sums a profile's queues; the total
    is ``backlog`` (KEDA: ``valueLocation: backlog``).
    """
    names = queue or app.topology.queue_names()
    for name in names:
        if name not in app.topology.queues:
            raise NotFound(
                f"unknown queue {name!r}; known queues: {', '.join(app.topology.queue_names())}"
            )
    measured = measure(app.redis, app.topology, app.settings.autoscale_poll_s)
    total = for_queues(measured, names)
    return BacklogOverview(
        backlog=total.backlog,
        waiting=total.waiting,
        reserved=total.reserved,
        running=total.running,
        due_soon=total.due_soon,
        queues=[QueueBacklog(**measured[name].as_dict()) for name in names],
    )


@router.post("/queues/{name}/purge")
def purge_queue(name: str, app: App, principal: Admin) -> dict[str, Any]:
    """Remove the queue's waiting jobs; each becomes ``cancelled`` (admin)."""
    from conveyor.client.purge import purge_queue as purge

    return purge(app, name).as_dict()
