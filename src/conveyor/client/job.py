"""The client side of a job: the :class:`Job` handle that ``submit`` returns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from conveyor import delayed, keys
from conveyor.errors import JobTimeoutError, NotFound
from conveyor.events import Event, new_event
from conveyor.state import JobState

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.submission import Submission

State = TypeVar("State", bound=JobState)


class Job:
    """A handle on one job: read its state, wait for it, follow it, cancel it."""

    def __init__(
        self,
        app: Conveyor,
        job_id: str,
        *,
        deduplicated: bool = False,
        submitted: Submission | None = None,
    ) -> None:
        self.app = app
        self.id = job_id
        #: True when ``submit`` returned an existing job for the same idempotency key.
        self.deduplicated = deduplicated
        # What this handle's own submit enqueued (see submitted_state); None otherwise.
        self._submitted = submitted

    def __repr__(self) -> str:
        return f"<Job {self.id}>"

    def state(self) -> JobState:
        """A snapshot of the job's state; :class:`NotFound` if nothing is known of it.

        The live state answers first; once it has expired, the job store does.
        """
        raw = self.app.redis.hgetall(keys.job(self.id))
        if not raw:
            from conveyor.store import find_job

            record = find_job(self.app.settings, self.id)
            if record is None:
                raise NotFound(f"no job {self.id}")
            return record.to_state()
        return JobState.from_hash(self.id, cast(dict[bytes, bytes], raw))

    def submitted_state(self, cls: type[State] = JobState) -> State | None:  # type: ignore[assignment]
        """The state this handle's own ``submit`` wrote, built without a read.

        None when there is none to give (a deduplicated job, a handle not returned by
        ``submit``) or when the written status depends on time (a ``delay``/``eta``):
        read :meth:`state` then. The snapshot is the job as it was accepted: a worker
        may have moved it on since. ``cls`` builds a subclass of :class:`JobState`.
        """
        submission = self._submitted
        if submission is None or submission.due_at is not None:
            return None
        labels = submission.labels
        return cls(
            id=self.id,
            type=submission.type,
            queue=submission.queue,
            priority=submission.priority,
            status="queued",
            payload=submission.payload,
            created_at=submission.created_at,
            tenant=labels.get("tenant") or None,
            batch_id=labels.get("batch_id") or None,
            replay_of=labels.get("replay_of") or None,
            tags=labels.get("tags") or [],
        )

    def wait(self, timeout: float | None = None) -> JobState:
        """Block until the job is succeeded, failed or cancelled; return its final state.

        Raises :class:`JobTimeoutError` when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self.app.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(keys.job_channel(self.id))
        try:
            while True:
                state = self.state()
                if state.done:
                    return state
                remaining = 1.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise JobTimeoutError(f"job {self.id} still {state.status} after {timeout:g}s")
                # Any message (or a 1 s tick, as a safety net) means: read the state again.
                pubsub.get_message(timeout=min(remaining, 1.0))
        finally:
            pubsub.close()

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The job's events as they happen, ending after a terminal one.

        The first item is a ``{"type": "state", "state": {...}}`` snapshot, so a
        late subscriber knows where the job stands before the next live event. Each
        event is its wire form (:meth:`conveyor.events.Event.fields`); for typed
        access, ``Event.from_dict(item)``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self.app.redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(keys.job_channel(self.id))
        try:
            snapshot = self.state()
            yield {"type": "state", "job_id": self.id, "state": snapshot.model_dump(mode="json")}
            if snapshot.done:
                return
            last_check = time.monotonic()
            while True:
                remaining = 1.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise JobTimeoutError(f"job {self.id} did not finish in {timeout:g}s")
                message = pubsub.get_message(timeout=min(remaining, 1.0))
                if message is not None and message.get("type") == "message":
                    event = Event.from_json(message["data"])
                    yield event.fields()
                    if event.terminal:
                        return
                elif time.monotonic() - last_check >= 1.0:
                    # Safety net for a missed message: the live state is the truth.
                    last_check = time.monotonic()
                    snapshot = self.state()
                    if snapshot.done:
                        yield {
                            "type": snapshot.status,
                            "job_id": self.id,
                            "state": snapshot.model_dump(mode="json"),
                        }
                        return
        finally:
            pubsub.close()

    def cancel(self) -> bool:
        """Cancel the job. A queued or scheduled job never starts; a running one stops
        at its next progress report, or its process is terminated after
        ``CONVEYOR_CANCEL_GRACE_S``. Returns False if it had already finished;
        raises :class:`NotFound` for an unknown job.

        The revocation is kept in ``conveyor:revoked`` (for ``CELERY_RESULT_EXPIRES``),
        so workers started later never run the job either.
        """
        state = self.state()
        if state.done:
            return False
        pipe = self.app.event_writer().client.pipeline(transaction=True)
        add_cancel(self.app, pipe, state)
        pipe.execute()
        return self.state().status == "cancelled"


def add_cancel(app: Conveyor, pipe: Any, state: JobState) -> None:
    """Add the cancellation of the job ``state`` describes to ``pipe``.

    Unscheduled, revoked (kept in ``conveyor:revoked``, announced to workers) and a
    ``cancelled`` event written; a job already finished refuses the event.
    """
    delayed.unschedule(pipe, state.id)
    now = time.time()
    pipe.zadd(keys.REVOKED, {state.id: now})
    pipe.zremrangebyscore(keys.REVOKED, "-inf", now - app.settings.result_expires_s)
    pipe.publish(keys.CANCELLED_CHANNEL, state.id)
    app.event_writer().emit(
        new_event(
            "cancelled",
            state.id,
            state.type,
            state.queue,
            attempt=state.attempt,
            deliveries=state.deliveries,
        ),
        fields={"finished_at": now},
        client=pipe,
        celery=[
            app.celery_events.event(
                "task-revoked",
                {"uuid": state.id, "terminated": False, "signum": None, "expired": False},
            )
        ]
        if app.hooks.flower_events
        else None,
    )
