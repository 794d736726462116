"""Purging a queue: its waiting jobs are removed and become ``cancelled``, not forgotten.

``celery purge`` deletes the messages and nothing else, so their jobs stay
``queued`` in the live state and the job store forever. :func:`purge_queue`
takes the messages off every priority list of the queue (a batch at a time,
each batch in one atomic script, so a worker never gets a message that is being
purged), then cancels their jobs as :meth:`Job.cancel` does (one transaction per batch) — revoked,
``cancelled`` in the live state, and a ``cancelled`` event that the recorder
writes to the store. Messages with no Conveyor job behind them (a plain Celery
task) are dropped and counted as foreign. Jobs that are running, or delayed (scheduled, retrying)
and not yet in the queue, are left alone.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from conveyor import keys
from conveyor.client.job import add_cancel
from conveyor.engine.transport import LEVELS
from conveyor.errors import NotFound
from conveyor.state import JobState

if TYPE_CHECKING:
    from conveyor.app import Conveyor

# Pop up to ARGV[1] messages off the queue's lists (KEYS), oldest first.
_TAKE = """
local out = {}
local budget = tonumber(ARGV[1])
for _, list in ipairs(KEYS) do
  while budget > 0 do
    local item = redis.call('RPOP', list)
    if not item then break end
    out[#out + 1] = item
    budget = budget - 1
  end
end
return out
"""

BATCH = 500


@dataclass
class PurgeReport:
    """What a purge removed: cancelled job ids, jobs already finished, foreign messages."""

    queue: str
    cancelled: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    foreign: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the report."""
        return {
            "queue": self.queue,
            "purged": len(self.cancelled) + len(self.already_done) + self.foreign,
            "cancelled": self.cancelled,
            "already_done": self.already_done,
            "foreign": self.foreign,
        }


def _job_id(raw: bytes) -> str | None:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        job_id = json.loads(raw)["headers"]["id"]
        return job_id if isinstance(job_id, str) else None
    return None


def purge_queue(app: Conveyor, queue: str) -> PurgeReport:
    """Remove every waiting message of ``queue`` and cancel its job (see the module doc)."""
    if queue not in app.topology.queues:
        known = ", ".join(app.topology.queue_names())
        raise NotFound(f"no queue {queue!r}; queues: {known}")
    client = app.redis
    take = client.register_script(_TAKE)
    lists = [keys.queue_list(queue, level) for level in LEVELS]
    report = PurgeReport(queue)
    seen: set[str] = set()
    while True:
        batch: list[bytes] = take(keys=lists, args=[BATCH])
        ids = []
        for raw in batch:
            job_id = _job_id(raw)
            if job_id is None:
                report.foreign += 1
            elif job_id not in seen:  # a second message of one job cancels nothing new
                seen.add(job_id)
                ids.append(job_id)
        _cancel_all(app, ids, report)
        if len(batch) < BATCH:
            return report


def _cancel_all(app: Conveyor, ids: list[str], report: PurgeReport) -> None:
    """Cancel ``ids`` in two round trips: read their live state, then one transaction."""
    if not ids:
        return
    client = app.redis
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(keys.job(job_id))
    states = pipe.execute()
    pipe = client.pipeline(transaction=True)
    for job_id, raw in zip(ids, states, strict=True):
        if not raw:  # a plain Celery task, or a job whose live state expired
            report.foreign += 1
            continue
        state = JobState.from_hash(job_id, cast(dict[bytes, bytes], raw))
        if state.done:
            report.already_done.append(job_id)
            continue
        add_cancel(app, pipe, state)
        report.cancelled.append(job_id)
    pipe.execute()
