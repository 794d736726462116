"""One reader of the ``conveyor:events`` stream per API process, fanned out in memory.

Every SSE and WebSocket client of this process shares one blocking ``XREAD`` on
the stream, instead of holding a Redis connection each. The stream's entry ids
are the events' ids: they order a job's events and let a client that reconnects
with ``Last-Event-ID`` be sent, from the stream, exactly the events it missed.
Observers (the Prometheus counters) see every event too. Events are handed on typed
(:class:`conveyor.events.Event`); an entry that is not one is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from conveyor import keys
from conveyor.events import Event, MalformedEvent

log = logging.getLogger("conveyor.api")

EventId = tuple[int, int]
ZERO: EventId = (0, 0)


def parse_id(raw: str | bytes) -> EventId:
    """``"1763731200123-4"`` → (1763731200123, 4); ValueError if malformed."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, sep, seq = text.partition("-")
    if not ms.isdigit() or (sep and not seq.isdigit()):
        raise ValueError(f"not a stream id: {text!r}")
    return int(ms), int(seq or 0)


def format_id(event_id: EventId) -> str:
    """The stream-id string of ``event_id``."""
    return f"{event_id[0]}-{event_id[1]}"


class Subscription:
    """One client's view of one job's live events."""

    def __init__(self, job_id: str, start: EventId) -> None:
        self.job_id = job_id
        #: The hub's position when this subscription began: later events arrive in ``queue``.
        self.start = start
        self.queue: asyncio.Queue[tuple[EventId, Event]] = asyncio.Queue(maxsize=10_000)


class EventHub:
    """Reads the event stream and hands each job's events to its subscribers."""

    def __init__(self, client: aioredis.Redis, *, block_ms: int = 1000) -> None:
        self.client = client
        self.block_ms = block_ms
        self.position: EventId = ZERO
        self._subs: dict[str, set[Subscription]] = {}
        self._observers: list[Callable[[Event], None]] = []
        self._task: asyncio.Task[None] | None = None
        #: Stream entries read back for resuming clients (what :meth:`history` costs).
        self.entries_read = 0

    def observe(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` for every event read from now on."""
        self._observers.append(callback)

    async def start(self) -> None:
        """Begin reading at the stream's current end."""
        last: Any = await self.client.xrevrange(keys.EVENTS, count=1)
        self.position = parse_id(last[0][0]) if last else ZERO
        self._task = asyncio.create_task(self._run(), name="conveyor-event-hub")

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        """Whether the reader task is alive."""
        return self._task is not None and not self._task.done()

    def subscribe(self, job_id: str) -> Subscription:
        """Start buffering ``job_id``'s events (those after :attr:`position`)."""
        sub = Subscription(job_id, self.position)
        self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop buffering for ``sub``."""
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                reply: Any = await self.client.xread(
                    {keys.EVENTS: format_id(self.position)}, count=1000, block=self.block_ms
                )
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker restarting: keep trying
                log.warning("event hub: reading %s failed: %s", keys.EVENTS, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            for _, entries in reply or ():
                for raw_id, fields in entries:
                    self.position = parse_id(raw_id)
                    self._dispatch(self.position, fields)

    def _dispatch(self, event_id: EventId, fields: dict[bytes, bytes]) -> None:
        try:
            event = Event.from_stream(fields)
        except MalformedEvent:
            return
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer's bug must not stop the stream
                log.exception("event observer failed")
        for sub in self._subs.get(event.job_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait((event_id, event))

    async def history(
        self, job_id: str, after: EventId, until: EventId, first: EventId | None = None
    ) -> list[tuple[EventId, Event]] | None:
        """``job_id``'s events with ``after < id <= until``, oldest first.

        ``first`` is the job's first event id (kept in its live state): the read
        seeks there when ``after`` is older, so its cost is the job's span of the
        stream, not the whole stream. None when the stream was trimmed past the
        first wanted event (events may be missing: the caller sends the state).
        """
        since = first if first is not None and first > after else (after[0], after[1] + 1)
        if until < since:
            return []
        oldest: Any = await self.client.xrange(keys.EVENTS, count=1)
        known_start = after != ZERO or first is not None
        if oldest and known_start and parse_id(oldest[0][0]) > since:
            return None
        found: list[tuple[EventId, Event]] = []
        cursor = format_id(since)
        needle = f'"job_id":"{job_id}"'.encode()
        while True:
            batch: Any = await self.client.xrange(
                keys.EVENTS, min=cursor, max=format_id(until), count=2000
            )
            if not batch:
                return found
            self.entries_read += len(batch)
            for raw_id, fields in batch:
                data = fields.get(b"e", b"")
                if needle in data:
                    try:
                        event = Event.from_json(data)
                    except MalformedEvent:
                        continue
                    if event.job_id == job_id:
                        found.append((parse_id(raw_id), event))
            cursor = f"({batch[-1][0].decode()}"
            if len(batch) < 2000:
                return found
