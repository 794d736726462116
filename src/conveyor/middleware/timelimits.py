"""Time limits per job type, as middleware (the options' owner)."""

from __future__ import annotations

from conveyor.middleware.base import Middleware


class TimeLimits(Middleware):
    """Gives ``time_limit=`` and ``soft_time_limit=`` of ``@app.job`` their meaning.

    The worker's pool enforces them (a soft limit raises
    :class:`~conveyor.SoftTimeLimitExceeded` in the job, a hard one kills and
    replaces its process; :mod:`conveyor.timelimits` resolves them against the
    settings). A hard kill is recorded by the worker whatever the middleware list:
    as a failed attempt, through the same hooks as any failure (retried by
    :class:`~conveyor.middleware.Retries` while retries remain). The settings'
    limits (``CELERY_TASK_TIME_LIMIT``…) and a submit's own ``time_limit=`` apply
    without this middleware.
    """

    options = frozenset({"time_limit", "soft_time_limit"})
