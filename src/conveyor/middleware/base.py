"""The middleware base: every hook is a documented no-op.

Subclass :class:`Middleware`, override the hooks you need, and pass instances
to ``Conveyor(middleware=[...])``. Hooks run in list order before a job and in
reverse order after it. A hook that raises is logged and skipped: it never
changes a job's outcome (the two exceptions are :class:`~conveyor.errors.SkipJob`
and :class:`~conveyor.errors.Defer` from :meth:`Middleware.before_job`, and a
:class:`~conveyor.errors.ConveyorError` from :meth:`Middleware.before_enqueue`,
which refuses the submission).

Where each hook runs::

    client            before_enqueue
    worker (main)     on_worker_boot ... on_worker_shutdown
    worker (job)      before_job → the job → on_error (if it raised)
                      → after_job (every attempt's outcome)
                      → after_final (once: succeeded, failed for good, or cancelled)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from conveyor.middleware.outcome import Outcome

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.jobs import JobContext


class Middleware:
    """Hooks around a job's life. Each is a no-op by default."""

    #: The ``@app.job`` options this middleware gives meaning to: a job type that
    #: declares one on an app without this middleware is refused at declaration.
    #: A name that is not one of Conveyor's own options is a new option: the app
    #: accepts it and keeps its value in ``JobDefinition.options`` (``ctx.options``).
    options: ClassVar[frozenset[str]] = frozenset()

    def on_worker_boot(self, app: Conveyor, worker: str) -> None:
        """Called in a worker's main process once it consumes (``worker`` is its name)."""

    def on_worker_shutdown(self, app: Conveyor, worker: str) -> None:
        """Called in a worker's main process when it stops."""

    def before_enqueue(self, app: Conveyor, submission: Mapping[str, Any]) -> None:
        """Called by the submitting client before a new job is enqueued.

        ``submission`` holds ``id``, ``type``, ``queue``, ``priority``, ``payload``
        (validated) and ``labels`` (``tenant``, ``batch_id``, ``tags``). Raise a
        :class:`~conveyor.errors.ConveyorError` (e.g. ``PermissionDenied``) to refuse
        the submission; nothing is enqueued then.
        """

    def before_job(self, ctx: JobContext, params: Any) -> None:
        """Called before each attempt runs (``params`` is the validated input).

        Raise :class:`~conveyor.errors.SkipJob` to end the job as ``cancelled``
        without running it, or :class:`~conveyor.errors.Defer` to run it later
        (same attempt).
        """

    def on_error(self, ctx: JobContext, exc: BaseException) -> None:
        """Called when the job's function raised, before its retry or failure is decided."""

    def after_job(self, ctx: JobContext, outcome: Outcome) -> None:
        """Called after every attempt, once its outcome is recorded: ``succeeded``,
        ``retrying`` (another attempt follows), ``failed`` (for good) or ``cancelled``."""

    def after_final(self, ctx: JobContext, outcome: Outcome) -> None:
        """Called once per job, after its final outcome is recorded (never for
        ``retrying``): the place to mirror a job's end into your own records."""
