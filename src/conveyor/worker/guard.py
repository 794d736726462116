"""Refuse a Celery worker started outside ``conveyor worker``.

``celery -A myproject.jobs:app.celery worker`` (or ``celery multi``) would run
Conveyor's job types without the heartbeat, the orphan rescue, the delayed-job
mover or cancellation, all of which ``conveyor worker`` adds around Celery's
worker. Rather than run jobs half-supervised, such a worker stops at start with
the command to use instead. Celery's control commands (``celery inspect``,
``celery control``, ``celery purge``) are unaffected: they start no worker.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery, signals

#: Set by :func:`conveyor.worker.process.run_worker` just before Celery's worker starts.
_STARTED_BY_CONVEYOR = False

MESSAGE = (
    "error: Conveyor job types run under `conveyor worker`, not `celery worker` or "
    "`celery multi`: a plain Celery worker has no heartbeat, orphan rescue, delayed jobs or "
    "cancellation. Run `CONVEYOR_APP=module:app conveyor worker --profile PROFILE` "
    "(add --detach, --pidfile and --logfile to run it as a daemon)."
)


def mark_started_by_conveyor() -> None:
    """Let this process's Celery worker start (``conveyor worker`` calls this)."""
    global _STARTED_BY_CONVEYOR
    _STARTED_BY_CONVEYOR = True


def install(celery_app: Celery) -> None:
    """Make a worker of ``celery_app`` refuse to start unless ``conveyor worker`` started it."""

    def refuse(sender: Any = None, conf: Any = None, **_: Any) -> None:
        if conf is not celery_app.conf or _STARTED_BY_CONVEYOR:
            return
        print(MESSAGE, file=sys.stderr, flush=True)
        # SystemExit passes through Celery's signal dispatch (it catches Exception only).
        raise SystemExit(2)

    signals.celeryd_init.connect(refuse, weak=False)
