"""Retries with backoff: a transient failure runs again later while retries remain."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from kombu.utils.encoding import safe_repr

from conveyor.errors import PayloadInvalid, PermanentError, TransientError
from conveyor.middleware.outcome import Outcome
from conveyor.middleware.policy import Policy

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.jobs import JobDefinition
    from conveyor.worker.executor import Execution

log = logging.getLogger("conveyor.worker")


class Retries(Policy):
    """Gives ``retries=``, ``backoff=`` and ``transient=`` of ``@app.job`` their meaning.

    A failed attempt whose error is transient (:func:`is_transient`) is put back on
    the delayed set as the next attempt, after its backoff step
    (:func:`conveyor.jobs.backoff_delay`; ``CONVEYOR_DEFAULT_BACKOFF_S``,
    ``CONVEYOR_BACKOFF_MAX_S``, ``CONVEYOR_BACKOFF_JITTER``), while the job type has
    retries left (``CONVEYOR_DEFAULT_RETRIES`` unless it says). Without this
    middleware every failure is final.
    """

    options = frozenset({"retries", "backoff", "transient"})

    def on_failure(
        self, execution: Execution, exc: BaseException, started_at: float
    ) -> Outcome | None:
        """Reschedule the next attempt after its backoff, the ``retrying`` event with it."""
        app, definition = execution.app, execution.definition
        if not is_transient(definition, exc) or execution.attempt >= app.retries_for(definition):
            return None
        from conveyor.jobs import backoff_delay

        settings = app.settings
        schedule = definition.backoff
        if schedule is None:
            schedule = settings.default_backoff_s
        delay = backoff_delay(
            schedule, execution.attempt, settings.backoff_max_s, settings.backoff_jitter
        )
        error = execution._error_fields(exc)
        due_at = time.time() + delay
        execution._write(
            execution._reschedule,
            execution.attempt + 1,
            due_at,
            execution._event("retrying", **error, retry_in_s=delay),
            {**error, "due_at": due_at},
            celery=[
                execution._celery(
                    "task-retried", exception=safe_repr(exc), traceback=error["traceback"]
                )
            ]
            if execution.flower
            else None,
        )
        log.warning(
            "job %s attempt %d failed (%s: %s); retry in %.1fs",
            execution.job_id,
            execution.attempt,
            error["error_type"],
            error["error_message"],
            delay,
        )
        return Outcome("retrying", error=exc, retry_in_s=delay)


def retries_in(app: Conveyor, definition: JobDefinition) -> int:
    """How many retries a job type gets in ``app``: its own or the default with a
    :class:`Retries` middleware installed, none without (every failure is final)."""
    if not any(isinstance(mw, Retries) for mw in app.middleware):
        return 0
    return app.retries_for(definition)


def is_transient(definition: JobDefinition, exc: BaseException) -> bool:
    """Whether ``exc`` is worth another attempt of a job of type ``definition``.

    :class:`PermanentError` and invalid input never are; :class:`TransientError` and
    time limits always are; any other error is when it is one of the job type's
    ``transient`` classes (connection errors, timeouts and ``OSError`` by default).
    """
    if isinstance(exc, PermanentError | PayloadInvalid):
        return False
    # Here, not at import: the app (and so a quick CLI command) imports this module.
    from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

    if isinstance(exc, TransientError | SoftTimeLimitExceeded | TimeLimitExceeded):
        return True
    return isinstance(exc, definition.transient)
