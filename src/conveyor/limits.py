"""Time limits: the exceptions a job sees, and the limits one submission may set.

Every job runs under a soft and a hard time limit: the job type's
(``@app.job(time_limit=, soft_time_limit=)``), else the settings'
(``CELERY_TASK_TIME_LIMIT``, ``CELERY_TASK_SOFT_TIME_LIMIT``). A submission (or a
dead-letter replay) may override them for that one job; the override travels
in the message (Celery's ``timelimit`` header) and with every retry.

- At the **soft** limit, :class:`SoftTimeLimitExceeded` is raised inside the job,
  which may catch it to clean up (and ``ctx.tempdir()`` directories are removed
  whatever happens). Not caught, it fails the attempt like any transient error.
- At the **hard** limit, the worker kills the job's pool process and starts a new
  one; Conveyor records :class:`TimeLimitExceeded` as a failed attempt, retried or
  dead-lettered by the job type's policy.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from conveyor.errors import InvalidSubmission
from conveyor.jobs import JobDefinition
from conveyor.settings import Settings

__all__ = ["SoftTimeLimitExceeded", "TimeLimitExceeded", "resolve_limits"]


def resolve_limits(
    definition: JobDefinition,
    settings: Settings,
    time_limit: float | None,
    soft_time_limit: float | None,
    *,
    visibility_timeout_s: float | None = None,
) -> tuple[float | None, float | None]:
    """The ``(hard, soft)`` limits to send with one submission, or ``(None, None)``.

    With only ``time_limit`` given, the soft limit keeps the job type's margin
    below the hard one (at least half the hard limit), so a longer hard limit
    also moves the soft one. Raises :class:`InvalidSubmission` for limits that
    are not positive, a soft limit not below the hard one, or a hard limit that
    reaches the broker's visibility timeout (the job would be delivered twice).
    """
    if time_limit is None and soft_time_limit is None:
        return None, None
    base_hard = definition.time_limit or settings.time_limit_s
    base_soft = definition.soft_time_limit or settings.soft_time_limit_s
    for name, value in (("time_limit", time_limit), ("soft_time_limit", soft_time_limit)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise InvalidSubmission(f"{name} must be a number of seconds > 0 (got {value!r})")
    hard = float(time_limit) if time_limit is not None else float(base_hard)
    if soft_time_limit is not None:
        soft = float(soft_time_limit)
    else:
        margin = max(0.0, base_hard - base_soft)
        soft = max(hard - margin, hard / 2)
    if soft >= hard:
        raise InvalidSubmission(f"soft_time_limit ({soft:g}s) must be below time_limit ({hard:g}s)")
    if visibility_timeout_s is not None and hard >= visibility_timeout_s:
        raise InvalidSubmission(
            f"time_limit {hard:g}s reaches the broker's visibility timeout "
            f"({visibility_timeout_s:g}s, CONVEYOR_VISIBILITY_TIMEOUT_S); the job would be "
            "delivered twice"
        )
    return hard, soft
