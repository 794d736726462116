"""Periodic jobs: what ``@app.periodic`` and ``[schedules.NAME]`` in ``conveyor.toml`` declare.

A schedule fires one job type every interval (``every="1h"``) or on a cron
expression (``cron="0 3 * * *"``, UTC), with a fixed payload, queue and
priority. ``conveyor beat`` runs the schedules (:mod:`conveyor.services.beat`, on
celery-redbeat); every run is an ordinary job submitted through
:meth:`Conveyor.submit`, so it is validated, recorded and dead-lettered like
any other. This module holds the declarations and the run bookkeeping that the
beat, the CLI and the API share: the last run of each schedule (time, job id),
pausing, and running one now.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from celery.schedules import crontab
from celery.schedules import schedule as interval_schedule

from conveyor import keys
from conveyor.errors import ConfigurationError, ConveyorError, NotFound
from conveyor.settings import parse_duration
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY

if TYPE_CHECKING:
    from conveyor.app import Conveyor

_ALLOWED = {"job", "every", "cron", "payload", "queue", "priority", "enabled"}


@dataclass(frozen=True)
class Schedule:
    """One periodic job: which job type, when, and with what input."""

    name: str
    job: str
    every_s: float | None = None
    cron: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    #: False: declared (so ``conveyor.toml`` can switch it on) but never fired.
    enabled: bool = True

    @property
    def when(self) -> str:
        """The schedule in words: ``every 3600s`` or ``cron 0 3 * * *``."""
        return f"cron {self.cron}" if self.cron else f"every {self.every_s:g}s"

    def celery_schedule(self) -> interval_schedule | crontab:
        """The schedule as Celery (and redbeat) computes due times with it."""
        if self.cron:
            minute, hour, day_of_month, month_of_year, day_of_week = self.cron.split()
            return crontab(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                day_of_week=day_of_week,
            )
        return interval_schedule(timedelta(seconds=float(self.every_s or 0)))


def make_schedule(
    name: str,
    job: str,
    *,
    every: str | float | None = None,
    cron: str | None = None,
    payload: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    enabled: bool = True,
    where: str | None = None,
) -> Schedule:
    """Check one declaration and build its :class:`Schedule` (errors name ``where``)."""
    where = where or f"schedule {name!r}"
    if not name or any(c.isspace() for c in name) or len(name) > 200 or name.startswith(":"):
        raise ConfigurationError(f"{where}: a schedule name is 1–200 characters, no spaces")
    if keys.BEAT_PREFIX + name == keys.BEAT_LOCK:
        raise ConfigurationError(f"{where}: the name {name!r} is the beat lock's; choose another")
    if (every is None) == (cron is None):
        raise ConfigurationError(f"{where}: give exactly one of every= and cron=")
    every_s = None
    if every is not None:
        try:
            every_s = parse_duration(every) if isinstance(every, str) else float(every)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: every: {exc}") from None
        if every_s <= 0:
            raise ConfigurationError(f"{where}: every must be above 0 seconds")
    if cron is not None:
        if not isinstance(cron, str) or len(cron.split()) != 5:
            raise ConfigurationError(
                f"{where}: cron must have five fields (minute hour day month weekday), "
                f"e.g. '0 3 * * *' (got {cron!r})"
            )
        try:
            Schedule(name, job, cron=cron).celery_schedule()
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"{where}: cron {cron!r}: {exc}") from None
    if priority is not None and (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise ConfigurationError(f"{where}: priority must be an integer 0–10")
    if payload is not None and not isinstance(payload, Mapping):
        raise ConfigurationError(f"{where}: payload must be a table / dict")
    return Schedule(
        name=name,
        job=job,
        every_s=every_s,
        cron=cron,
        payload=dict(payload or {}),
        queue=queue,
        priority=priority,
        enabled=bool(enabled),
    )


def apply_config(
    declared: Mapping[str, Schedule], data: Mapping[str, Any], source: str
) -> dict[str, Schedule]:
    """``declared`` with the ``[schedules.NAME]`` tables of a ``conveyor.toml`` merged in.

    A table naming a declared schedule changes only the keys it gives (``every``
    and ``cron`` replace each other; ``enabled = false`` switches it off); a new
    name declares a schedule, which then needs ``job`` and ``every`` or ``cron``.
    """
    merged = dict(declared)
    tables = data.get("schedules", {})
    if not isinstance(tables, Mapping):
        raise ConfigurationError(f"{source}: schedules must be a table")
    for name, spec in tables.items():
        where = f"{source}: schedules.{name}"
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"{where}: must be a table")
        unknown = set(spec) - _ALLOWED
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED)}"
            )
        current = merged.get(name)
        if current is None and "job" not in spec:
            raise ConfigurationError(f"{where}: a new schedule needs job = 'JOB.TYPE'")
        base = current or Schedule(name, str(spec["job"]))
        timing = (
            {"every": spec.get("every"), "cron": spec.get("cron")}
            if "every" in spec or "cron" in spec
            else {"every": base.every_s, "cron": base.cron}
        )
        merged[name] = make_schedule(
            name,
            str(spec.get("job", base.job)),
            payload=spec.get("payload", base.payload),
            queue=spec.get("queue", base.queue),
            priority=spec.get("priority", base.priority),
            enabled=spec.get("enabled", base.enabled),
            where=where,
            **timing,
        )
    return merged


def load_schedules(app: Conveyor, declared: Mapping[str, Schedule]) -> dict[str, Schedule]:
    """The declared schedules with ``conveyor.toml``'s merged in, each job type checked."""
    from conveyor.topology import read_config

    found = read_config(app.settings.config_file)
    merged = apply_config(declared, found[0], found[1]) if found else dict(declared)
    for schedule in merged.values():
        definition = app.definitions.get(schedule.job)
        if definition is None:
            raise ConfigurationError(
                f"schedule {schedule.name!r}: unknown job type {schedule.job!r}"
            )
        if schedule.queue is not None and schedule.queue not in app.topology.queues:
            raise ConfigurationError(
                f"schedule {schedule.name!r}: unknown queue {schedule.queue!r}"
            )
    return merged


# ------------------------------------------------------------------ the runs


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as operators read it: when it runs next, and what its last run made."""

    name: str
    job: str
    when: str
    queue: str | None
    priority: int | None
    payload: dict[str, Any]
    enabled: bool
    paused: bool
    next_run_at: float | None
    last_run_at: float | None
    last_job_id: str | None
    last_fired_by: str | None
    last_error: str | None
    runs: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (``conveyor schedules --json``, ``GET /api/v1/schedules``)."""
        return dict(self.__dict__)


def _get(app: Conveyor, name: str) -> Schedule:
    found = app.schedules().get(name)
    if found is None:
        known = ", ".join(sorted(app.schedules())) or "none"
        raise NotFound(f"no schedule {name!r}; schedules: {known}")
    return found


def next_run_at(schedule: Schedule, last_run_at: float | None, now: float) -> float:
    """When ``schedule`` is next due after a run at ``last_run_at`` (now if it never ran)."""
    if last_run_at is None:
        if schedule.cron is None:
            return now
        last_run_at = now
    last = datetime.fromtimestamp(last_run_at, tz=UTC)
    remaining = schedule.celery_schedule().remaining_estimate(last)
    return max(now, last_run_at + remaining.total_seconds())


def views(app: Conveyor) -> list[ScheduleView]:
    """Every schedule with its next run (the beat's own due time once it runs) and last run."""
    schedules = sorted(app.schedules().values(), key=lambda s: s.name)
    client = app.redis
    pipe = client.pipeline(transaction=False)
    for schedule in schedules:
        pipe.hgetall(keys.schedule_runs(schedule.name))
        pipe.zscore(keys.BEAT_SCHEDULE, keys.BEAT_PREFIX + schedule.name)
    pipe.smembers(keys.SCHEDULES_PAUSED)
    replies = pipe.execute()
    paused = {raw.decode() for raw in cast(set[bytes], replies[-1])}
    now = time.time()
    out = []
    for index, schedule in enumerate(schedules):
        raw = cast(dict[bytes, bytes], replies[2 * index])
        runs = {k.decode(): v.decode() for k, v in raw.items()}
        due = cast(float | None, replies[2 * index + 1])
        last = float(runs["last_run_at"]) if runs.get("last_run_at") else None
        upcoming = None
        if schedule.enabled:
            upcoming = due if due is not None and due > 0 else next_run_at(schedule, last, now)
        out.append(
            ScheduleView(
                name=schedule.name,
                job=schedule.job,
                when=schedule.when,
                queue=schedule.queue,
                priority=schedule.priority,
                payload=schedule.payload,
                enabled=schedule.enabled,
                paused=schedule.name in paused,
                next_run_at=upcoming,
                last_run_at=last,
                last_job_id=runs.get("last_job_id") or None,
                last_fired_by=runs.get("last_fired_by") or None,
                last_error=runs.get("last_error") or None,
                runs=int(runs.get("runs") or 0),
            )
        )
    return out


def fire(app: Conveyor, schedule: Schedule, *, fired_by: str | None = None) -> str | None:
    """Submit one run of ``schedule`` as an ordinary job; record it; return the job id.

    A refused submission (payload no longer valid, unknown job type, broker down)
    is recorded as the schedule's ``last_error`` and returns None.
    """
    fired_by = fired_by or f"{socket.gethostname()}:{os.getpid()}"
    now = time.time()
    record: dict[Any, Any] = {"last_run_at": now, "last_fired_by": fired_by}
    job_id = None
    try:
        job = app.submit(
            schedule.job,
            schedule.payload,
            queue=schedule.queue,
            priority=schedule.priority,
            tags=[f"schedule:{schedule.name}"],
        )
        job_id = job.id
        record["last_job_id"] = job_id
        record["last_error"] = ""
    except ConveyorError as exc:
        record["last_error"] = f"{type(exc).__name__}: {exc}"
    pipe = app.redis.pipeline(transaction=True)
    pipe.hset(keys.schedule_runs(schedule.name), mapping=record)
    pipe.hincrby(keys.schedule_runs(schedule.name), "runs", 1)
    pipe.execute()
    return job_id


def run_now(app: Conveyor, name: str) -> str | None:
    """Fire schedule ``name`` once, now, whatever its timing (its next run is unchanged)."""
    return fire(app, _get(app, name), fired_by="run-now")


def set_paused(app: Conveyor, name: str, paused: bool) -> None:
    """Pause (its runs are skipped until resumed) or resume schedule ``name``."""
    _get(app, name)
    if paused:
        app.redis.sadd(keys.SCHEDULES_PAUSED, name)
    else:
        app.redis.srem(keys.SCHEDULES_PAUSED, name)


def is_paused(app: Conveyor, name: str) -> bool:
    """Whether schedule ``name`` is paused."""
    return bool(app.redis.sismember(keys.SCHEDULES_PAUSED, name))


def with_job(schedule: Schedule, job: str) -> Schedule:
    """``schedule`` firing job type ``job`` instead."""
    return replace(schedule, job=job)
