"""A job's events as a stream for SSE and WebSocket clients, resumable by event id.

The stream starts with a ``state`` event (the job's snapshot, whose id is the
event stream's position at that instant: the snapshot and the id are read in
one MULTI), then every later event of the job, and ends after a terminal one.
A client that reconnects with ``Last-Event-ID`` is first sent the events it
missed, read back from ``conveyor:events``, then the live ones: nothing is lost
and nothing repeats (events are filtered by id).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NamedTuple, cast

from starlette.concurrency import run_in_threadpool

from conveyor import keys
from conveyor.api import service
from conveyor.api.context import ApiContext
from conveyor.api.hub import ZERO, EventId, format_id, parse_id
from conveyor.errors import InvalidSubmission
from conveyor.state import JobState

#: How often a quiet stream re-reads the job's state (a safety net, never the main path).
RECHECK_S = 5.0


def parse_last_event_id(raw: str | None) -> EventId | None:
    """A ``Last-Event-ID`` header or parameter; :class:`InvalidSubmission` if malformed."""
    if raw is None or raw == "":
        return None
    try:
        return parse_id(raw.strip())
    except ValueError:
        raise InvalidSubmission(
            f"Last-Event-ID must be an event id like 1763731200123-0 (got {raw[:40]!r})"
        ) from None


class Snapshot(NamedTuple):
    """The job's state, the stream's position at that instant, and the job's first event id."""

    position: EventId
    state: JobState | None
    first: EventId | None


async def _snapshot(ctx: ApiContext, job_id: str) -> Snapshot:
    assert ctx.aredis is not None
    async with ctx.aredis.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.job(job_id))
        pipe.xrevrange(keys.EVENTS, count=1)
        raw, top = await pipe.execute()
    position = parse_id(top[0][0]) if top else ZERO
    if raw:
        live = cast(dict[bytes, bytes], raw)
        first = live.get(b"first_event")
        state = JobState.from_hash(job_id, live)
        return Snapshot(position, state, parse_id(first) if first else None)
    stored: JobState | None = await run_in_threadpool(service.stored_state, ctx, job_id)
    return Snapshot(position, stored, None)


def _state_event(job_id: str, state: JobState | None) -> dict[str, Any]:
    return {
        "type": "state",
        "job_id": job_id,
        "state": state.model_dump(mode="json") if state else None,
    }


async def job_events(
    ctx: ApiContext, job_id: str, last_event_id: EventId | None
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event id, event) pairs for one job: see the module docstring."""
    hub = ctx.hub
    assert hub is not None
    sub = hub.subscribe(job_id)
    try:
        position, state, first = await _snapshot(ctx, job_id)
        done = state is not None and state.done
        if last_event_id is None:
            cursor = position
            yield format_id(cursor), _state_event(job_id, state)
            if done:
                return
        else:
            cursor = last_event_id
            missed = await hub.history(job_id, cursor, max(position, sub.start), first)
            if missed is None:
                # The stream was trimmed past the client's id: send where the job stands.
                cursor = max(position, sub.start)
                yield format_id(cursor), _state_event(job_id, state)
                missed = []
            for event_id, event in missed:
                cursor = event_id
                yield format_id(event_id), event.fields()
                if event.terminal:
                    return
            if done:
                return
        while True:
            try:
                event_id, event = await asyncio.wait_for(sub.queue.get(), RECHECK_S)
            except TimeoutError:
                state = (await _snapshot(ctx, job_id)).state
                if state is not None and state.done and sub.queue.empty():
                    # The terminal event went by unseen (the hub reconnected): say so.
                    yield (
                        format_id(cursor),
                        {
                            "type": state.status,
                            "job_id": job_id,
                            "state": state.model_dump(mode="json"),
                        },
                    )
                    return
                continue
            if event_id <= cursor:
                continue
            cursor = event_id
            yield format_id(event_id), event.fields()
            if event.terminal:
                return
    finally:
        hub.unsubscribe(sub)
