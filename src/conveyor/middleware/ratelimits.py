"""Rate limits per job type, shared by every worker, as middleware."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from conveyor.middleware.policy import Policy

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution

log = logging.getLogger("conveyor.worker")


class RateLimits(Policy):
    """``@app.job(rate_limit="10/m")``: at most that many starts of the job type in any
    window, counted on the broker across every worker (:mod:`conveyor.worker.ratelimits`).

    A job over its limit is not failed: it goes back to the delayed set for when a
    slot frees up, with the same attempt (a rate-limited job uses none of its retries).
    """

    options = frozenset({"rate_limit"})

    def before_start(self, execution: Execution) -> bool:
        """Take a slot of the job type's limit, or put the job back for later."""
        if not execution.definition.rate_limit:
            return False
        # Until the start is recorded the job has not run: a broker that is down or
        # refuses writes is waited for, and the message stays unacknowledged meanwhile.
        return execution._write(self._take_slot, execution)

    def _take_slot(self, execution: Execution) -> bool:
        rate = execution.definition.rate_limit
        assert rate is not None
        wait = execution.app.rate_limiter.acquire(execution.definition.name, rate, execution.job_id)
        if not wait:  # 0: a slot is ours; None: the job is finished (the start refuses it)
            return False
        due_at = time.time() + wait
        execution._reschedule(
            execution.attempt,
            due_at,
            execution._event("scheduled", due_at=due_at, message=f"rate limited ({rate})"),
            {"due_at": due_at},
        )
        log.info("job %s rate limited (%s); back in %.2fs", execution.job_id, rate, wait)
        return True
