"""The delivery limit: a job whose worker process keeps dying under it fails for good."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import DeliveryLimitExceeded
from conveyor.middleware.policy import Policy

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution


class DeliveryLimit(Policy):
    """Fail (and dead-letter) a job started more than ``CONVEYOR_MAX_REDELIVERIES``
    times beyond its attempts.

    Each attempt is started once; every start beyond that is a redelivery after its
    worker process died (a segfault, the kernel's OOM killer) or was rescued from a
    dead worker. Without this middleware such a job is delivered again for ever.
    """

    def after_start(self, execution: Execution, started_at: float) -> bool:
        """Fail the job with :class:`DeliveryLimitExceeded` once it is over the limit."""
        redeliveries = execution.deliveries - (execution.attempt + 1)
        limit = execution.app.settings.max_redeliveries
        if redeliveries <= limit:
            return False
        execution._handle_error(
            DeliveryLimitExceeded(
                f"started {execution.deliveries} times without finishing "
                f"({redeliveries} redeliveries after its worker process died; "
                f"CONVEYOR_MAX_REDELIVERIES={limit})"
            ),
            started_at,
        )
        return True
