"""``/api/v1/workers``: live workers."""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.api.deps import App, Reader
from conveyor.api.schemas import Worker
from conveyor.worker.heartbeats import live_workers

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", response_model=list[Worker])
def list_workers(app: App, principal: Reader) -> list[Worker]:
    """Workers whose heartbeat is recent, with what each reports (active, processed)."""
    return [
        Worker(
            name=w.name,
            hostname=w.host,
            profile=w.profile,
            queues=w.queues,
            concurrency=w.concurrency,
            pid=w.pid,
            active=getattr(w, "active", None),
            processed=getattr(w, "processed", None),
            started_at=w.started_at,
            last_heartbeat=w.last_heartbeat,
        )
        for w in live_workers(app.redis, app.settings.heartbeat_s)
    ]
