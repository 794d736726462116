"""The application the worker time-limit e2e test runs in its worker.

The built-in diagnostics jobs plus ``e2e.hang``: a job with no time limits of its
own (so the worker's apply) that catches the soft limit, reports it as progress,
and keeps going — so it runs until the hard limit kills it. Workers load it with
``CONVEYOR_APP=tests.e2e.limits_app:app``.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from conveyor import Conveyor, JobContext, Settings, SoftTimeLimitExceeded

HANG = "e2e.hang"
APP = "tests.e2e.limits_app:app"


class HangInput(BaseModel):
    """Run for ``seconds``, through a soft time limit."""

    seconds: float = Field(3.0, ge=0, le=600)


def hang(ctx: JobContext, params: HangInput) -> dict[str, float]:
    """Sleep ``seconds`` in short slices; a soft limit is reported, not obeyed."""
    deadline = time.monotonic() + params.seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(min(0.05, left))
        except SoftTimeLimitExceeded:
            ctx.progress(50, stage="soft limit caught")
    return {"slept_s": params.seconds}


def make_app(settings: Settings | None = None) -> Conveyor:
    """The built-in app plus ``e2e.hang`` (no limits of its own, no retries)."""
    app = Conveyor(settings)
    app.job(HANG, retries=0)(hang)
    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, not at import (nothing happens at import time).
    if name == "app":
        return make_app()
    raise AttributeError(name)
