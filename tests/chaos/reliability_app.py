"""The application the dead-letter chaos tests run in their workers.

The built-in diagnostics jobs plus ``chaos.hang``: a job with its own time limits
(soft 1 s, hard 2 s, one retry) that makes a ``ctx.tempdir()``, catches the soft
limit and keeps going — so it is killed at the hard limit unless a replay gives
it more time. Workers load it with ``CONVEYOR_APP=tests.chaos.reliability_app:app``.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from conveyor import Conveyor, JobContext, Settings, SoftTimeLimitExceeded

HANG = "chaos.hang"


class HangInput(BaseModel):
    """Run for ``seconds``; catch the soft limit and go on, unless ``catch_soft`` is false."""

    seconds: float = Field(3.0, ge=0, le=600)
    catch_soft: bool = True


def hang(ctx: JobContext, params: HangInput) -> dict[str, float]:
    """Hold a temporary directory for ``seconds``; report it, and any soft limit, as progress."""
    with ctx.tempdir() as path:
        (path / "scratch.bin").write_bytes(b"\0" * 4096)
        ctx.progress(1, stage="tempdir", message=str(path))
        deadline = time.monotonic() + params.seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                time.sleep(min(0.05, left))
            except SoftTimeLimitExceeded:
                if not params.catch_soft:
                    raise
                ctx.progress(2, stage="soft limit caught", message=str(path))
    return {"slept_s": params.seconds}


def make_app(settings: Settings | None = None) -> Conveyor:
    """The built-in app plus ``chaos.hang``."""
    app = Conveyor(settings)
    app.job(HANG, retries=1, backoff=(0.2,), time_limit=2, soft_time_limit=1)(hang)
    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, not at import (nothing happens at import time).
    if name == "app":
        return make_app()
    raise AttributeError(name)
