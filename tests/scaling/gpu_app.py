"""An application for the GPU tests: a GPU-only job type and a model loaded at worker start."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings

loads = {"count": 0}


class Nothing(BaseModel):
    """No input."""


def model() -> dict[str, Any]:
    """Stands in for a model loaded once per worker process."""
    loads["count"] += 1
    return {"name": "tiny-model", "loads": loads["count"]}


def gpu_only(ctx: JobContext, params: Nothing) -> str:
    """Must never run on a CPU-only worker."""
    return "ran"


def uses_model(ctx: JobContext, params: Nothing) -> dict[str, Any]:
    """Reads what the start hook loaded."""
    return dict(ctx.resources["model"])


def build(settings: Settings | None = None) -> Conveyor:
    """The application, on ``settings`` (the environment's by default)."""
    built = Conveyor(settings)
    built.on_worker_start(model)
    built.job("gpu.only", queue="processing", gpu="required", retries=0)(gpu_only)
    built.job("hooks.model", queue="processing", retries=0)(uses_model)
    return built


app = build()
