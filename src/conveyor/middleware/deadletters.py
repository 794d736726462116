"""Dead letters: a job that failed for good is announced on the ``dead-letter`` queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.middleware.policy import Policy

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution


class DeadLetters(Policy):
    """Publish a failed job's dead-letter message, from which the monitoring worker
    sends the webhook alert when its queue calls for one (:mod:`conveyor.services.alerts`).

    The dead letter itself (full input and traceback, for ``conveyor dlq`` and
    replay) is filed by the recorder from the ``failed`` event, which the worker
    writes in every case; without this middleware no alert is sent.
    """

    def after_failed(self, execution: Execution, dead_letter: dict[str, Any]) -> None:
        """Publish ``dead_letter`` (never raises: a refused publish is logged)."""
        from conveyor.worker.deadletter import send_dead_letter

        send_dead_letter(execution.app, dead_letter)
