"""The stalled-job detector: ``started`` jobs with no sign of life, re-queued or failed by policy.

A job is stalled when it is ``started`` and neither it (progress) nor its worker
(heartbeat) has shown life for the threshold (``CONVEYOR_STALLED_THRESHOLD_S``;
default three missed heartbeats, at least 30 s) — in practice its worker died
or froze. Candidates come from the job store (:func:`conveyor.monitor.tasks.stalled`);
each is checked against the live state first, so a job that moved on since the
recorder last caught up is left alone. ``CONVEYOR_STALLED_POLICY`` then says:

* ``requeue`` (default): the job runs again at once as its next attempt, like a
  retry (a ``retrying`` event, then ``queued``), with its own time limits, while
  retries remain (none without the ``Retries`` middleware); with none left it fails
  as ``fail`` does. The stalled delivery, if it ever comes back,
  is refused at start as stale (its attempt is older).
* ``fail``: the job fails with :class:`~conveyor.errors.JobStalled` and is
  dead-lettered, as any failed job.
* ``report``: nothing is changed.

The ``upkeep.stalled`` job and ``POST /api/v1/monitoring/tasks/cleanup`` run this.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from conveyor import keys
from conveyor.errors import JobStalled, UnknownJobType
from conveyor.middleware.retries import retries_in
from conveyor.monitor import tasks
from conveyor.submission import LIMITS
from conveyor.worker.executor import Execution

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.settings import Settings

log = logging.getLogger("conveyor.monitor")

Policy = Literal["requeue", "fail", "report"]


def default_threshold(settings: Settings) -> float:
    """``CONVEYOR_STALLED_THRESHOLD_S``, else three missed heartbeats, at least 30 s."""
    return settings.stalled_threshold_s or max(30.0, 3 * settings.heartbeat_s)


@dataclass
class StalledReport:
    """What one pass found and did."""

    threshold_s: float
    policy: Policy
    jobs: list[dict[str, Any]] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the report."""
        return {
            "threshold_s": self.threshold_s,
            "policy": self.policy,
            "stalled": len(self.jobs),
            "jobs": self.jobs,
            "requeued": self.requeued,
            "failed": self.failed,
        }


def handle_stalled(
    app: Conveyor,
    store: Any,
    *,
    threshold_s: float | None = None,
    policy: Policy | None = None,
    tenant: str | None = None,
) -> StalledReport:
    """Find stalled jobs and apply ``policy`` (default ``CONVEYOR_STALLED_POLICY``) to each."""
    threshold = threshold_s or default_threshold(app.settings)
    report = StalledReport(threshold, policy or app.settings.stalled_policy)
    for found in tasks.stalled(app, store, tenant, threshold):
        live = _live(app, found["id"])
        if live.get("status") != "started":
            continue  # finished or re-queued since the store was written
        report.jobs.append(found)
        if report.policy == "report":
            continue
        outcome = _act(app, found["id"], live, threshold, report.policy)
        if outcome == "requeued":
            report.requeued.append(found["id"])
        elif outcome == "failed":
            report.failed.append(found["id"])
    return report


def _live(app: Conveyor, job_id: str) -> dict[str, str]:
    raw = cast(dict[bytes, bytes], app.redis.hgetall(keys.job(job_id)))
    return {k.decode(): v.decode() for k, v in raw.items()}


def _act(
    app: Conveyor, job_id: str, live: dict[str, str], threshold: float, policy: Policy
) -> str | None:
    attempt = int(live.get("attempt") or 0)
    if not app.redis.set(keys.stalled_claim(job_id, attempt), "1", nx=True, ex=3600):
        return None  # another detector handles this attempt
    try:
        definition = app.definition(live.get("type", ""))
    except UnknownJobType:
        log.warning("stalled job %s: unknown job type %r; left alone", job_id, live.get("type"))
        return None
    # The delivery's meta as the live state keeps it, the job's own time limits
    # included: the re-queue publishes it through Submission.of_delivery.
    meta = {
        "attempt": attempt,
        "queue": live.get("queue") or None,
        "priority": int(live["priority"]) if live.get("priority") else None,
        "created_at": float(live["created_at"]) if live.get("created_at") else None,
        **{name: float(live[name]) for name in LIMITS if live.get(name)},
    }
    payload = json.loads(live["payload"]) if live.get("payload") else {}
    execution = Execution(app, definition, job_id, payload, meta, live.get("worker") or "unknown")
    execution.deliveries = int(live.get("deliveries") or 0)
    message = (
        f"stalled: no progress and no heartbeat from {live.get('worker') or 'its worker'} "
        f"for over {threshold:g}s"
    )
    now = time.time()
    if policy == "requeue" and attempt < retries_in(app, definition):
        # Immediately, as the next attempt: the same path a GPU out-of-memory retry takes.
        execution._reschedule(
            attempt + 1,
            now,
            execution._event(
                "retrying", error_type="JobStalled", error_message=message, retry_in_s=0.0
            ),
            {"error_type": "JobStalled", "error_message": message, "due_at": now},
        )
        log.warning("job %s %s; re-queued as attempt %d", job_id, message, attempt + 1)
        return "requeued"
    started_at = float(live.get("started_at") or now)
    execution._handle_error(JobStalled(message), started_at)
    return "failed"
