"""``/api/v1/queues`` (and the older ``/api/v1/generate/queue/status`` path)."""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.api.deps import App, Reader
from conveyor.api.schemas import QueuesOverview, QueueStatus
from conveyor.monitor.queues import backlog_totals, queue_views

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
