"""Every Redis key and channel name Conveyor uses, built in one place.

All of them sit under the ``conveyor:`` prefix. The queue lists themselves belong
to the Celery transport and are named by :func:`queue_list`.
"""

from __future__ import annotations

PREFIX = "conveyor"

#: The stream every state change is appended to (read by the recorder).
EVENTS = f"{PREFIX}:events"
#: Sorted set of delayed submissions, scored by due time (unix seconds).
DELAYED = f"{PREFIX}:delayed"
#: Hash of delayed submissions: job id -> submission JSON.
DELAYED_JOBS = f"{PREFIX}:delayed:jobs"
#: Sorted set of live workers, scored by their last heartbeat.
WORKERS = f"{PREFIX}:workers"
#: Set of job ids that were cancelled and must never start.
REVOKED = f"{PREFIX}:revoked"

#: Separator between a queue name and its priority level in list names.
PRIORITY_SEP = ":"


def job(job_id: str) -> str:
    """The live-state hash of one job."""
    return f"{PREFIX}:job:{job_id}"


def job_channel(job_id: str) -> str:
    """The pub/sub channel that carries one job's events."""
    return f"{PREFIX}:job:{job_id}"


def worker(name: str) -> str:
    """The hash that describes one live worker."""
    return f"{PREFIX}:worker:{name}"


def idempotency(key: str) -> str:
    """Maps an idempotency key to the job id that holds it."""
    return f"{PREFIX}:idem:{key}"


def queue_list(queue: str, level: int) -> str:
    """The broker list that holds ``queue``'s messages of priority ``level``.

    Level 0 is the bare queue name (what tools that read one list see); every
    other level has its own list, ``critical:10`` being the most urgent.
    """
    return queue if level == 0 else f"{queue}{PRIORITY_SEP}{level}"
