"""Diagnostics jobs: ``diag.noop``, ``diag.sleep`` and ``diag.flaky``.

They exercise the platform without doing real work: throughput (noop),
progress and cancellation (sleep), retries and failures (flaky).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from conveyor.errors import PermanentError, TransientError
from conveyor.jobs import JobContext
from conveyor.middleware.options import installed_options

if TYPE_CHECKING:
    from conveyor.app import Conveyor


class NoopInput(BaseModel):
    """``diag.noop`` takes nothing."""


class SleepInput(BaseModel):
    """Sleep ``seconds`` in total, reporting progress ``steps`` times."""

    seconds: float = Field(1.0, ge=0, le=86400)
    steps: int = Field(1, ge=1, le=10000)


class FlakyInput(BaseModel):
    """Fail the first ``fail_times`` attempts (transient or permanent), then succeed."""

    fail_times: int = Field(1, ge=0, le=100)
    permanent: bool = False


def noop(ctx: JobContext, params: NoopInput) -> None:
    """Do nothing."""


def sleep(ctx: JobContext, params: SleepInput) -> dict[str, float]:
    """Sleep in ``steps`` slices, reporting progress after each."""
    pause = params.seconds / params.steps
    for step in range(1, params.steps + 1):
        time.sleep(pause)
        ctx.progress(
            100.0 * step / params.steps,
            stage=f"step {step}/{params.steps}",
            message=f"slept {pause * step:.2f}s of {params.seconds:g}s",
        )
    return {"slept_s": params.seconds}


def flaky(ctx: JobContext, params: FlakyInput) -> dict[str, int]:
    """Raise on the first ``fail_times`` attempts."""
    if ctx.attempt < params.fail_times:
        if params.permanent:
            raise PermanentError(f"permanent failure on attempt {ctx.attempt}")
        raise TransientError(f"transient failure on attempt {ctx.attempt}")
    return {"attempts": ctx.attempt + 1}


def register(app: Conveyor) -> None:
    """Register the diagnostics jobs on ``app``."""
    app.job("diag.noop", retries=0)(noop)
    app.job("diag.sleep", retries=0)(sleep)
    retry = installed_options({"retries": 5, "backoff": (0.2, 0.4, 0.8)}, app.middleware)
    app.job("diag.flaky", **retry)(flaky)
