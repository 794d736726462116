"""``conveyor beat``: the schedules of :mod:`conveyor.schedules`, run by celery-redbeat.

RedBeat keeps the schedule in Redis (each entry's definition and last run in a
hash, due times in a sorted set) and lets one beat at a time fire it: a beat
takes the lock ``conveyor:beat:lock`` at start (``SET NX`` with a timeout,
``CONVEYOR_BEAT_LOCK_TIMEOUT_S``) and renews it on every tick; a second beat
blocks on the lock, retrying every ``CONVEYOR_BEAT_INTERVAL_S``. So two beats
never fire the same run, and when the active one dies the other takes over
within one lock timeout (plus one interval); a beat that stops cleanly releases
the lock at once.

RedBeat records a run (the entry's ``last_run_at``) *before* sending it, so a
beat killed in between loses that one run rather than firing it twice.

Conveyor changes one thing: a due entry is not sent as a bare Celery task but
submitted through :meth:`Conveyor.submit` (:func:`conveyor.schedules.fire`), so
every run is an ordinary job — validated, recorded, dead-lettered on failure.
A paused schedule's runs are skipped (its due time still advances).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from redbeat import RedBeatScheduler

from conveyor import keys
from conveyor.schedules import Schedule, fire, is_paused

if TYPE_CHECKING:
    from celery import Celery

    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.services.beat")


class ConveyorScheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's scheduler, firing each due entry as a Conveyor job.

    ``conveyor`` is set on a subclass made per application (:func:`scheduler_for`).
    """

    conveyor: Conveyor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.declared: dict[str, Schedule] = self.conveyor.schedules()
        super().__init__(*args, **kwargs)

    def install_default_entries(self, data: Any) -> None:
        """None: Celery's ``celery.backend_cleanup`` is not a Conveyor job (results live in
        the job state, which expires by itself)."""

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> str | None:
        """Advance the entry (RedBeat's bookkeeping), then submit its job; the job id."""
        entry = self.reserve(entry) if advance else entry
        schedule = self.declared.get(entry.name)
        if schedule is None or not schedule.enabled:
            log.warning("beat: entry %s is no schedule of this application; skipped", entry.name)
            return None
        if is_paused(self.conveyor, schedule.name):
            log.info("beat: schedule %s is paused; run skipped", schedule.name)
            return None
        job_id = fire(self.conveyor, schedule, fired_by=self.identity)
        if job_id is None:
            log.error(
                "beat: schedule %s could not submit its job (see `conveyor schedules`)", entry.name
            )
        else:
            log.info("beat: schedule %s submitted %s as job %s", entry.name, schedule.job, job_id)
        return job_id


def configure(celery_app: Celery, app: Conveyor) -> None:
    """Point RedBeat at the broker and give it the enabled schedules."""
    settings = app.settings
    celery_app.conf.update(
        beat_schedule={
            s.name: {"task": s.job, "schedule": s.celery_schedule(), "args": (), "kwargs": {}}
            for s in app.schedules().values()
            if s.enabled
        },
        beat_max_loop_interval=settings.beat_interval_s,
        redbeat_redis_url=app.broker_url,
        redbeat_redis_options={},
        redbeat_key_prefix=keys.BEAT_PREFIX,
        redbeat_lock_key=keys.BEAT_LOCK,
        redbeat_lock_timeout=settings.beat_lock_timeout_s,
    )


def scheduler_for(app: Conveyor) -> type[ConveyorScheduler]:
    """A :class:`ConveyorScheduler` bound to ``app``."""
    return type("ConveyorAppScheduler", (ConveyorScheduler,), {"conveyor": app})


def run_beat(app: Conveyor, loglevel: str = "INFO") -> None:
    """Run the beat in the foreground until stopped (SIGTERM or Ctrl-C release the lock)."""
    celery_app = app.celery
    configure(celery_app, app)
    beat = celery_app.Beat(
        scheduler=scheduler_for(app),  # type: ignore[arg-type]  # a class works too
        max_interval=app.settings.beat_interval_s,  # type: ignore[arg-type]
        loglevel=loglevel,
        quiet=True,
    )
    beat.run()
