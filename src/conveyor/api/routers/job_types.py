"""``/api/v1/job-types``: every registered job type with its queue, limits and input schema."""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.api.deps import App, Reader
from conveyor.api.schemas import JobType
from conveyor.api.submitpolicy import visible_job_types
from conveyor.middleware.retries import retries_in

router = APIRouter(prefix="/job-types", tags=["job types"])


@router.get("", response_model=list[JobType])
def list_job_types(app: App, principal: Reader) -> list[JobType]:
    """Registered job types, by name (the platform's own upkeep types for admins only)."""
    found = []
    for name, definition in sorted(visible_job_types(app, principal).items()):
        backoff = definition.backoff
        found.append(
            JobType(
                name=name,
                queue=app.queue_for(definition),
                priority=definition.priority,
                retries=retries_in(app, definition),
                backoff=list(backoff) if isinstance(backoff, list | tuple) else backoff,
                time_limit_s=definition.time_limit,
                soft_time_limit_s=definition.soft_time_limit,
                rate_limit=definition.rate_limit,
                gpu=definition.gpu,
                unique=list(definition.unique)
                if isinstance(definition.unique, tuple)
                else definition.unique,
                input_schema=definition.json_schema(),
            )
        )
    return found
