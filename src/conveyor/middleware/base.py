"""The middleware base: every hook is a documented no-op.

Subclass :class:`Middleware`, override the hooks you need, and pass instances
to ``Conveyor(middleware=[...])``. Hooks run in the worker process that runs
the job, in list order before the job and in reverse order after it.
"""

from __future__ import annotations

from typing import Any

from conveyor.jobs import JobContext


class Middleware:
    """Hooks around a job's execution. Each is a no-op by default."""

    def before_job(self, ctx: JobContext, params: Any) -> None:
        """Called after the job is marked started, before its function runs."""

    def after_job(self, ctx: JobContext, result: Any) -> None:
        """Called after the job's function returned, before it is marked succeeded."""

    def on_error(self, ctx: JobContext, exc: BaseException) -> None:
        """Called when the job's function raised (before any retry is scheduled)."""
