"""Every Redis key and channel name Conveyor uses, built in one place.

All of them sit under the ``conveyor:`` prefix. The queue lists themselves belong
to the Celery transport and are named by :func:`queue_list`.
"""

from __future__ import annotations

import hashlib

PREFIX = "conveyor"

#: The stream every state change is appended to (read by the recorder).
EVENTS = f"{PREFIX}:events"
#: Sorted set of delayed submissions, scored by due time (unix seconds).
DELAYED = f"{PREFIX}:delayed"
#: Hash of delayed submissions: job id -> submission JSON.
DELAYED_JOBS = f"{PREFIX}:delayed:jobs"
#: Sorted set of live workers, scored by their last heartbeat.
WORKERS = f"{PREFIX}:workers"
#: Sorted set of cancelled job ids (scored by cancel time) that must never start.
REVOKED = f"{PREFIX}:revoked"
#: Pub/sub channel on which cancellations are announced to workers (job ids).
CANCELLED_CHANNEL = f"{PREFIX}:cancelled"
#: Set of worker names that hold (or held) delivered, unacknowledged messages.
HOLDERS = f"{PREFIX}:holders"

#: Hash of manual worker-count pins: profile -> count (``conveyor scale``).
SCALING_PINS = f"{PREFIX}:scaling:pins"
#: Hash of the worker manager's latest view per profile: profile -> JSON.
SCALING_STATE = f"{PREFIX}:scaling:state"
#: List of the latest scaling decisions (JSON, newest first, capped).
SCALING_DECISIONS = f"{PREFIX}:scaling:decisions"
#: String (JSON, with a TTL) describing the running worker manager.
SCALING_MANAGER = f"{PREFIX}:scaling:manager"

#: String: the secret that signs job read tokens and dashboard sessions (SET NX once).
SIGNING_SECRET = f"{PREFIX}:signing:secret"

#: The consumer group through which the recorder reads :data:`EVENTS`.
RECORDER_GROUP = "recorder"
#: Hash of the recorder's counters (recorded, malformed, outages).
RECORDER_STATS = f"{PREFIX}:recorder:stats"

#: Hash of how many malformed messages workers took off each queue and rejected.
MALFORMED_COUNTS = f"{PREFIX}:malformed:counts"
#: List of the latest rejected malformed messages (newest first, capped), for inspection.
MALFORMED = f"{PREFIX}:malformed"

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


def worker_held(name: str) -> str:
    """The set of delivery tags one worker holds unacknowledged (for the orphan rescue)."""
    return f"{PREFIX}:held:{name}"


def unique(job_type: str, digest: str, tenant: str | None = None) -> str:
    """Maps a job type's uniqueness key (a payload digest) to the job id that holds it.

    Scoped to the tenant, like idempotency keys: another tenant's job never matches.
    """
    return f"{PREFIX}:unique:{tenant_scope(tenant)}:{job_type}:{digest}"


def tenant_scope(tenant: str | None) -> str:
    """A tenant as a key segment: ``_`` for none, else a digest of its name.

    Hashed so that a name holding a separator (``a/b``, ``a:b``) cannot pose as
    another tenant's scope followed by a key.
    """
    return "_" if tenant is None else "t" + hashlib.sha256(tenant.encode()).hexdigest()[:24]


def gpu_wait(job_id: str) -> str:
    """When a ``gpu="required"`` job was first handed back for want of a GPU (a string)."""
    return f"{PREFIX}:gpu-wait:{job_id}"


def gpu_waiting(queue: str) -> str:
    """Sorted set: ``gpu="required"`` jobs of ``queue`` handed back, by last hand-back time."""
    return f"{PREFIX}:gpu-waiting:{queue}"


def rate_limit(job_type: str) -> str:
    """The sliding-window log of one job type's recent starts (a sorted set)."""
    return f"{PREFIX}:jobrate:{job_type}"


def dead_letter_replay(job_id: str) -> str:
    """Claims the replay of one dead letter (its value: the new job's id)."""
    return f"{PREFIX}:dlq:replay:{job_id}"


def idempotency(key: str) -> str:
    """Maps an idempotency key to the job id that holds it."""
    return f"{PREFIX}:idem:{key}"


def queue_list(queue: str, level: int) -> str:
    """The broker list that holds ``queue``'s messages of priority ``level``.

    Level 0 is the bare queue name (what tools that read one list see); every
    other level has its own list, ``critical:10`` being the most urgent.
    """
    return queue if level == 0 else f"{queue}{PRIORITY_SEP}{level}"


def api_rate(key_id: str, slot: int) -> str:
    """The counter of one API key's submissions in one rate-limit window."""
    return f"{PREFIX}:ratelimit:{key_id}:{slot}"


def batch(batch_id: str) -> str:
    """The hash that describes one batch (tenant, total, created_at)."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_jobs(batch_id: str) -> str:
    """The list of one batch's job ids."""
    return f"{PREFIX}:batch:{batch_id}:jobs"


#: celery-redbeat's key prefix: the beat's schedule (``conveyor:beat::schedule``), its
#: entries (``conveyor:beat:NAME``) and its lock live under it (see conveyor.services.beat).
BEAT_PREFIX = f"{PREFIX}:beat:"
#: RedBeat's sorted set of schedule entries by due time (its prefix + ``:schedule``).
BEAT_SCHEDULE = f"{BEAT_PREFIX}:schedule"
#: The lock that lets one ``conveyor beat`` at a time fire schedules.
BEAT_LOCK = f"{BEAT_PREFIX}lock"
#: Set of the names of paused schedules.
SCHEDULES_PAUSED = f"{PREFIX}:schedules:paused"
#: Pub/sub channel carrying each host's resource samples (JSON).
RESOURCES_CHANNEL = f"{PREFIX}:resources"
#: Hash of the latest resource sample per host: hostname -> JSON.
RESOURCES_LATEST = f"{PREFIX}:resources:latest"


def schedule_runs(name: str) -> str:
    """The hash of one schedule's last run (time, job id, who fired it, run count, error)."""
    return f"{PREFIX}:schedule:{name}"


def resources_history(host: str) -> str:
    """The list of one host's recent resource samples (JSON, newest first, capped)."""
    return f"{PREFIX}:resources:history:{host}"


def stalled_claim(job_id: str, attempt: int) -> str:
    """Claims the handling of one stalled attempt, so two detectors act on it once."""
    return f"{PREFIX}:stalled:{job_id}:{attempt}"
