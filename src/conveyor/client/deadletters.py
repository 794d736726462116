"""Dead letters from Python: list, show, replay and purge.

Every ``failed`` job has a dead letter in the job store (filed by the recorder
from the job's ``failed`` event, kept for ``CONVEYOR_DEAD_LETTER_RETENTION``)::

    from conveyor.client import deadletters

    for letter in deadletters.list_dead_letters(app, queue="critical"):
        print(letter.job_id, letter.error_type)
    job = deadletters.replay(app, dead_id, time_limit=7200)   # a new job
    report = deadletters.replay_matching(app, type="video.render", error_type="TimeoutError")
    deadletters.purge(app, dead_id)

A replayed job is a **new job** (a new id) whose ``queued`` event carries
``replay_of``. Replaying and purging do not write the store themselves: they
append ``dead_letter_replayed`` / ``dead_letter_purged`` events to
``conveyor:events`` and the recorder — the only writer of the store — applies
them. A replay is claimed in Redis first, so two concurrent replays of one dead
letter make one job.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from conveyor import keys
from conveyor.errors import (
    Conflict,
    InvalidSubmission,
    NotFound,
    PayloadInvalid,
    StoreError,
    UnknownJobType,
)
from conveyor.events import SCHEMA_VERSION
from conveyor.store.records import DeadLetterRecord as DeadLetter

if TYPE_CHECKING:
    import redis

    from conveyor.app import Conveyor
    from conveyor.client.job import Job

#: Bulk operations touch at most this many dead letters per call unless told otherwise.
BULK_LIMIT = 10_000

Moment = datetime | float | None

__all__ = [
    "BULK_LIMIT",
    "DeadLetter",
    "NotReplayable",
    "ReplayReport",
    "get_dead_letter",
    "list_dead_letters",
    "purge",
    "replay",
    "replay_matching",
]


class NotReplayable(InvalidSubmission):
    """A dead letter cannot be replayed as it is (its type is gone or its payload no longer
    validates); it is left in place. ``errors`` holds field errors when the payload is at fault.
    """

    def __init__(self, job_id: str, reason: str, errors: list[dict[str, Any]] | None = None):
        self.job_id = job_id
        self.errors = errors or []
        super().__init__(f"cannot replay dead letter {job_id}: {reason}; it is left in place")


@dataclass
class ReplayReport:
    """What a bulk replay did: ``replayed`` maps dead job id → new job id."""

    replayed: dict[str, str] = field(default_factory=dict)
    #: Dead job id → why it was not replayed (left in place).
    refused: dict[str, str] = field(default_factory=dict)


class _Store(Protocol):
    def get_dead_letter(self, job_id: str) -> DeadLetter | None: ...

    def list_dead_letters(
        self,
        type: str | None = ...,
        queue: str | None = ...,
        error_type: str | None = ...,
        since: float | None = ...,
        until: float | None = ...,
        tenant: str | None = ...,
        include_replayed: bool = ...,
        limit: int = ...,
    ) -> list[DeadLetter]: ...


@contextlib.contextmanager
def _opened(app: Conveyor, store: Any) -> Iterator[_Store]:
    """``store`` as given, or the application's job store opened (and closed) here."""
    if store is not None:
        yield store
        return
    from conveyor.store import open_store

    opened = open_store(app.settings)
    try:
        yield opened
    except StoreError as exc:
        if "no such table" in str(exc) or "does not exist" in str(exc):
            raise StoreError(
                f"{exc}; the job store has no schema yet: start the recorder "
                "(`conveyor up` or `conveyor recorder`) or run `conveyor db upgrade`"
            ) from None
        raise
    finally:
        opened.close()


def _epoch(moment: Moment) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.timestamp()
    return float(moment)


# ----------------------------------------------------------------------------- reading


def get_dead_letter(app: Conveyor, job_id: str, *, store: Any = None) -> DeadLetter:
    """The dead letter of job ``job_id``; :class:`NotFound` if there is none."""
    with _opened(app, store) as opened:
        letter = opened.get_dead_letter(job_id)
    if letter is None:
        raise NotFound(f"no dead letter for job {job_id}")
    return letter


def list_dead_letters(
    app: Conveyor,
    *,
    type: str | None = None,
    queue: str | None = None,
    error_type: str | None = None,
    since: Moment = None,
    until: Moment = None,
    tenant: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    store: Any = None,
) -> list[DeadLetter]:
    """Dead letters matching every filter given, most recently failed first.

    ``since``/``until`` bound the failure time (a datetime or unix seconds);
    replayed dead letters are left out unless ``include_replayed``.
    """
    with _opened(app, store) as opened:
        return opened.list_dead_letters(
            type=type,
            queue=queue,
            error_type=error_type,
            since=_epoch(since),
            until=_epoch(until),
            tenant=tenant,
            include_replayed=include_replayed,
            limit=limit,
        )


# ----------------------------------------------------------------------------- replay


def replay(
    app: Conveyor,
    job_id: str,
    *,
    queue: str | None = None,
    priority: int | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    force: bool = False,
    store: Any = None,
) -> Job:
    """Submit the dead job ``job_id`` again, as a new job linked to its dead letter.

    The new job gets the dead letter's payload, type, queue, priority and tenant;
    ``queue``, ``priority`` and the time limits override them (e.g. a longer
    ``time_limit`` for a job that died at its hard limit). Raises
    :class:`NotFound` for an unknown id, :class:`NotReplayable` when the job type
    no longer exists or the payload no longer validates, and :class:`Conflict`
    when the dead letter was already replayed (``force=True`` replays it again).
    Nothing changes when it raises.
    """
    return _replay_letter(
        app,
        get_dead_letter(app, job_id, store=store),
        queue=queue,
        priority=priority,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        force=force,
    )


def replay_matching(
    app: Conveyor,
    *,
    type: str | None = None,
    queue: str | None = None,
    error_type: str | None = None,
    since: Moment = None,
    until: Moment = None,
    tenant: str | None = None,
    limit: int = BULK_LIMIT,
    to_queue: str | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    everything: bool = False,
    store: Any = None,
) -> ReplayReport:
    """Replay every not-yet-replayed dead letter matching the filters (up to ``limit``).

    One dead letter that cannot be replayed does not stop the others: it is
    listed in :attr:`ReplayReport.refused` with the reason, and left in place.
    ``to_queue`` and the time limits apply to every replayed job. With no
    filter, ``everything=True`` is required, as for :func:`purge`: an empty
    filter would replay every tenant's dead letters.
    """
    _require_filter("replay", everything, type, queue, error_type, since, until, tenant)
    report = ReplayReport()
    letters = list_dead_letters(
        app,
        type=type,
        queue=queue,
        error_type=error_type,
        since=since,
        until=until,
        tenant=tenant,
        limit=limit,
        store=store,
    )
    for letter in letters:
        try:
            job = _replay_letter(
                app,
                letter,
                queue=to_queue,
                priority=None,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
                force=False,
            )
        except (InvalidSubmission, Conflict) as exc:
            report.refused[letter.job_id] = str(exc)
        else:
            report.replayed[letter.job_id] = job.id
    return report


def _replay_letter(
    app: Conveyor,
    letter: DeadLetter,
    *,
    queue: str | None,
    priority: int | None,
    time_limit: float | None,
    soft_time_limit: float | None,
    force: bool,
) -> Job:
    if letter.replayed_as and not force:
        raise Conflict(
            f"dead letter {letter.job_id} was already replayed as {letter.replayed_as}; "
            "force it (`--force`, `force=True`) to replay it again"
        )
    try:
        definition = app.definition(letter.type)
    except UnknownJobType as exc:
        raise NotReplayable(letter.job_id, str(exc)) from None
    try:
        definition.validate(letter.payload)
    except PayloadInvalid as exc:
        raise NotReplayable(
            letter.job_id, f"its payload no longer validates ({exc})", exc.errors
        ) from None
    claim = keys.dead_letter_replay(letter.job_id)
    client = app.redis
    ttl = max(60, int(letter.expires_at - time.time()))
    if force:
        client.set(claim, "pending", ex=ttl)
    elif not client.set(claim, "pending", ex=ttl, nx=True):
        holder = client.get(claim)
        shown = holder.decode() if isinstance(holder, bytes) else holder
        raise Conflict(f"dead letter {letter.job_id} is already being replayed ({shown})")
    try:
        job = app.submit(
            letter.type,
            letter.payload,
            queue=queue or letter.queue,
            priority=priority if priority is not None else letter.priority,
            tenant=letter.tenant,
            replay_of=letter.job_id,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
        )
    except BaseException:
        client.delete(claim)
        raise
    pipe = client.pipeline(transaction=False)
    pipe.set(claim, job.id, ex=ttl)
    _append(
        pipe,
        app.settings.events_maxlen,
        {"type": "dead_letter_replayed", "job_id": letter.job_id, "replayed_as": job.id},
    )
    pipe.execute()
    return job


# ----------------------------------------------------------------------------- purge


def purge(
    app: Conveyor,
    job_id: str | None = None,
    *,
    type: str | None = None,
    queue: str | None = None,
    error_type: str | None = None,
    since: Moment = None,
    until: Moment = None,
    tenant: str | None = None,
    include_replayed: bool = True,
    everything: bool = False,
    limit: int = BULK_LIMIT,
    store: Any = None,
) -> list[str]:
    """Delete dead letters: the one of ``job_id``, or every one matching the filters.

    With neither an id nor a filter, ``everything=True`` is required (a guard
    against emptying the dead-letter queue by accident). Returns the purged job
    ids; :class:`NotFound` for an unknown ``job_id``. The recorder removes the
    rows when it applies the ``dead_letter_purged`` events.
    """
    filters = {"type": type, "queue": queue, "error_type": error_type, "tenant": tenant}
    if job_id is not None:
        ids = [get_dead_letter(app, job_id, store=store).job_id]
    else:
        _require_filter("purge", everything, *filters.values(), since, until)
        letters = list_dead_letters(
            app,
            since=since,
            until=until,
            include_replayed=include_replayed,
            limit=limit,
            store=store,
            **filters,
        )
        ids = [letter.job_id for letter in letters]
    pipe = app.redis.pipeline(transaction=False)
    for dead_id in ids:
        _append(pipe, app.settings.events_maxlen, {"type": "dead_letter_purged", "job_id": dead_id})
    pipe.execute()
    return ids


def _require_filter(action: str, everything: bool, *filters: object) -> None:
    """:class:`InvalidSubmission` for a bulk action with no filter unless ``everything``."""
    if not everything and all(value is None for value in filters):
        raise InvalidSubmission(
            f"{action} needs a job id, a filter, or everything=True "
            '(`--all` on the command line, "all": true in the API)'
        )


def _append(pipe: redis.client.Pipeline, maxlen: int, event: dict[str, Any]) -> None:
    """Queue one dead-letter event for ``conveyor:events`` (the recorder applies it)."""
    body = {"v": SCHEMA_VERSION, **event, "ts": time.time()}
    pipe.xadd(
        keys.EVENTS,
        {"e": json.dumps(body, separators=(",", ":"))},
        maxlen=maxlen,
        approximate=True,
    )
