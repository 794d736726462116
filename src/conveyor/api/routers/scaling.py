"""``/api/v1/scaling``: the worker manager's view (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor.api.deps import Admin, App

router = APIRouter(prefix="/scaling", tags=["scaling"])


@router.get("")
def scaling_status(app: App, principal: Admin) -> dict[str, Any]:
    """Current and desired workers per profile, pins, and the latest decisions."""
    from conveyor import scaling

    return scaling.status(app)
