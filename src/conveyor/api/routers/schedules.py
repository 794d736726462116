"""``/api/v1/schedules``: periodic jobs with next and last runs; pause, resume, run now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor import schedules
from conveyor.api.deps import Admin, App, Reader

router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.get("")
def list_schedules(app: App, principal: Reader) -> list[dict[str, Any]]:
    """Every schedule: timing, payload, paused, next run, last run and its job id."""
    return [view.as_dict() for view in schedules.views(app)]


def _one(app: App, name: str) -> dict[str, Any]:
    return next(v.as_dict() for v in schedules.views(app) if v.name == name)


@router.post("/{name}/pause")
def pause(name: str, app: App, principal: Admin) -> dict[str, Any]:
    """Skip the schedule's runs until it is resumed (admin)."""
    schedules.set_paused(app, name, True)
    return _one(app, name)


@router.post("/{name}/resume")
def resume(name: str, app: App, principal: Admin) -> dict[str, Any]:
    """Resume a paused schedule from its next due time (admin)."""
    schedules.set_paused(app, name, False)
    return _one(app, name)


@router.post("/{name}/run-now", status_code=202)
def run_now(name: str, app: App, principal: Admin) -> dict[str, Any]:
    """Submit the schedule's job now; its timing is unchanged (admin)."""
    schedules.run_now(app, name)
    return _one(app, name)
