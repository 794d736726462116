"""Time limits: the exceptions a job sees, and the limits one submission may set.

Every job runs under a soft and a hard time limit: the job type's
(``@app.job(time_limit=, soft_time_limit=)``), else the worker's (its
``--time-limit``/``--soft-time-limit`` flags, else its profile's
``time_limit``/``soft_time_limit`` in ``conveyor.toml``), else the settings'
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

from conveyor.errors import ConfigurationError, InvalidSubmission
from conveyor.jobs import JobDefinition
from conveyor.settings import Settings
from conveyor.topology import Profile

__all__ = ["SoftTimeLimitExceeded", "TimeLimitExceeded", "resolve_limits", "worker_limits"]


def _soft_below(hard: float, base_hard: float, base_soft: float) -> float:
    """A soft limit keeping the base limits' margin below ``hard`` (at least half of it)."""
    return max(hard - max(0.0, base_hard - base_soft), hard / 2)


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
        soft = _soft_below(hard, base_hard, base_soft)
    if soft >= hard:
        raise InvalidSubmission(f"soft_time_limit ({soft:g}s) must be below time_limit ({hard:g}s)")
    if visibility_timeout_s is not None and hard >= visibility_timeout_s:
        raise InvalidSubmission(
            f"time_limit {hard:g}s reaches the broker's visibility timeout "
            f"({visibility_timeout_s:g}s, CONVEYOR_VISIBILITY_TIMEOUT_S); the job would be "
            "delivered twice"
        )
    return hard, soft


def worker_limits(
    settings: Settings,
    profile: Profile,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
) -> tuple[float, float]:
    """The ``(hard, soft)`` default limits of a worker running ``profile``.

    Each comes from the worker's flag, else the profile's entry in the topology,
    else the settings (``CELERY_TASK_TIME_LIMIT`` / ``CELERY_TASK_SOFT_TIME_LIMIT``).
    When the hard limit is the worker's own but the soft one is not, the soft limit
    keeps the settings' margin below it (at least half the hard limit), as a
    submission's override does. A job type's limits, and a submission's, win over
    these (Celery's per-task and per-message limits). Raises
    :class:`ConfigurationError` for a soft limit not below the hard one.
    """
    where = f"worker --profile {profile.name}"
    for flag, value in (("--time-limit", time_limit), ("--soft-time-limit", soft_time_limit)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise ConfigurationError(f"{where}: {flag} must be a number of seconds > 0")
    hard_own = time_limit if time_limit is not None else profile.time_limit
    soft_own = soft_time_limit if soft_time_limit is not None else profile.soft_time_limit
    hard = float(hard_own) if hard_own is not None else float(settings.time_limit_s)
    if soft_own is not None:
        soft = float(soft_own)
    elif hard_own is not None:
        soft = _soft_below(hard, settings.time_limit_s, settings.soft_time_limit_s)
    else:
        soft = float(settings.soft_time_limit_s)
    if soft >= hard:
        raise ConfigurationError(
            f"{where}: soft time limit ({soft:g}s) must be below the hard time limit "
            f"({hard:g}s); set both (--soft-time-limit/--time-limit, or the profile's "
            "soft_time_limit/time_limit in conveyor.toml)"
        )
    return hard, soft
