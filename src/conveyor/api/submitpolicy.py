"""Where an API caller may submit: which queues, and up to which priority.

Internal queues (``dead-letter`` and ``monitoring``: the dead-letter mover and the
platform's own alert and clean-up work run there) are never open to API
submissions — a tenant's job there could hold up alerts for every tenant. The job
types whose own queue is internal (the upkeep pack's retention, clean-up…) are the
platform's own: only an admin key may submit them (403 for any other key, whatever
queue it names), and ``GET /job-types`` lists them to admins only. Each
key may send a job to its type's own queue, and to the queues it was created
with (``conveyor keys create --queue``); it may ask for priorities up to its
``max_priority`` (7 unless created with ``--max-priority``). A request that
breaks these is refused before anything is enqueued: 422 for an internal queue
(no key may), 403 for what another key could be given.
"""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.api.auth import Principal
from conveyor.app import Conveyor
from conveyor.errors import InvalidSubmission, PermissionDenied
from conveyor.jobs import JobDefinition
from conveyor.topology import DEAD_LETTER, MAX_PRIORITY, MIN_PRIORITY

#: Queues only Conveyor itself submits to.
INTERNAL_QUEUES = frozenset({DEAD_LETTER, "monitoring"})


def check_submission(
    app: Conveyor, principal: Principal, job_type: str, queue: str | None, priority: int | None
) -> None:
    """Refuse (:class:`InvalidSubmission` / :class:`PermissionDenied`) what this caller may not.

    Unknown job types and queues are left to :meth:`Conveyor.submit`, which names the
    known ones.
    """
    definitions = app.definitions
    if job_type not in definitions:
        return
    if not principal.admin and is_platform_job(app, definitions[job_type]):
        raise PermissionDenied(
            f"job type {job_type} is internal to Conveyor (the platform's own upkeep): "
            "only an admin API key may submit it"
        )
    if queue is not None and queue not in app.topology.queues:
        return
    own = app.queue_for(definitions[job_type])
    target = queue or own
    if target in INTERNAL_QUEUES:
        raise InvalidSubmission(
            f"queue {target!r} is internal to Conveyor: API submissions cannot use it"
        )
    if target != own and principal.queues is not None and target not in principal.queues:
        extra = ", ".join(sorted(principal.queues)) or "none"
        raise PermissionDenied(
            f"this API key may submit {job_type} to its own queue {own!r} only (other queues "
            f"allowed: {extra}); create a key with `conveyor keys create --queue {target}`"
        )
    if priority is not None and priority > principal.max_priority:
        raise PermissionDenied(
            f"this API key may use priorities up to {principal.max_priority} (asked for "
            f"{priority}); create a key with `conveyor keys create --max-priority {priority}`"
        )


def is_platform_job(app: Conveyor, definition: JobDefinition) -> bool:
    """Whether a job type is the platform's own: its own queue is internal."""
    return app.queue_for(definition) in INTERNAL_QUEUES


def visible_job_types(app: Conveyor, principal: Principal) -> dict[str, JobDefinition]:
    """The job types ``principal`` may see: all for an admin, else all but the platform's own."""
    return {
        name: definition
        for name, definition in app.definitions.items()
        if principal.admin or not is_platform_job(app, definition)
    }


def check_key_queues(app: Conveyor, queues: Iterable[str]) -> list[str]:
    """The queues a new key may name, checked: :class:`InvalidSubmission` on unknown or internal."""
    chosen = sorted({q.strip() for q in queues if q.strip()})
    unknown = [q for q in chosen if q not in app.topology.queues]
    if unknown:
        known = ", ".join(q for q in app.topology.queue_names() if q not in INTERNAL_QUEUES)
        raise InvalidSubmission(f"unknown queue(s) {', '.join(unknown)}; known queues: {known}")
    internal = [q for q in chosen if q in INTERNAL_QUEUES]
    if internal:
        raise InvalidSubmission(
            f"queue(s) {', '.join(internal)} are internal to Conveyor: no API key may use them"
        )
    return chosen


def check_max_priority(value: int) -> int:
    """``value`` if it is a priority (0–10); :class:`InvalidSubmission` otherwise."""
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidSubmission(f"max priority must be 0–10 (got {value})")
    return value
