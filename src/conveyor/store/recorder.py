"""The recorder: the only writer of the job store.

It reads the ``conveyor:events`` stream through the consumer group ``recorder``,
writes each batch in one transaction (:meth:`JobStore.record`), and acknowledges
only what was committed. Because every write is an idempotent, order-safe merge
(:mod:`conveyor.store.merge`):

* a recorder that crashes leaves its batch pending in the stream; when it restarts
  (or another recorder runs) the entries are claimed back (``XAUTOCLAIM`` after
  ``CONVEYOR_RECORDER_CLAIM_IDLE_S``) and recorded again, without duplicates;
* two recorders can run at once: the group hands each entry to one of them, and an
  entry that both see (a claim of a slow one's batch) is merged twice to the same row;
* while the database is unreachable it retries the same batch with backoff and
  logs one line when the outage starts and one when it ends; the backlog waits in
  the stream.

A malformed entry (not JSON, unknown type, no job id…) is logged with its stream
id, acknowledged and counted in ``conveyor:recorder:stats``; it never stops the
recorder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError

from conveyor import keys
from conveyor.broker.outage import refuses_writes, unavailable
from conveyor.events import Event, MalformedEvent
from conveyor.store import merge
from conveyor.store.db import first_line
from conveyor.store.repository import JobStore, SidEvent

log = logging.getLogger("conveyor.recorder")

_BACKOFF_MAX_S = 5.0


@dataclass
class RecorderStats:
    """What one recorder process did."""

    recorded: int = 0
    malformed: int = 0
    batches: int = 0
    outages: int = 0
    malformed_ids: list[str] = field(default_factory=list)


@dataclass
class RecorderLag:
    """How far the job store is behind the event stream."""

    #: Whether the recorder's consumer group exists (False: no recorder has ever run).
    group: bool
    #: Events handed to a recorder and not yet acknowledged (being written, or stranded).
    pending: int
    #: Events in the stream no recorder has read yet (None if Redis cannot tell).
    unread: int | None
    #: Age in seconds of the oldest event not yet recorded; None when there is none.
    oldest_age_s: float | None

    def __int__(self) -> int:
        """The backlog as a number (pending only, when the unread count is unknown)."""
        return self.pending + (self.unread or 0)

    @property
    def backlog(self) -> int | None:
        """Events not yet recorded (pending + unread)."""
        return None if self.unread is None else self.pending + self.unread


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _age_s(stream_id: str, now_ms: int) -> float:
    return max(0.0, (now_ms - int(stream_id.partition("-")[0])) / 1000.0)


def recorder_lag(client: redis.Redis) -> RecorderLag:
    """The recorder's lag, read from Redis alone (no database needed)."""
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    try:
        groups = client.xinfo_groups(keys.EVENTS)
    except redis.ResponseError:
        return RecorderLag(group=False, pending=0, unread=0, oldest_age_s=None)
    group = next((g for g in groups if _text(g["name"]) == keys.RECORDER_GROUP), None)
    if group is None:
        first = client.xrange(keys.EVENTS, count=1)
        oldest = _age_s(_text(first[0][0]), now_ms) if first else None
        return RecorderLag(
            group=False, pending=0, unread=client.xlen(keys.EVENTS), oldest_age_s=oldest
        )
    pending = int(group["pending"])
    lag = group.get("lag")
    ages = []
    if pending:
        summary = client.xpending(keys.EVENTS, keys.RECORDER_GROUP)
        if summary.get("min"):
            ages.append(_age_s(_text(summary["min"]), now_ms))
    last = _text(group["last-delivered-id"])
    nxt = client.xrange(keys.EVENTS, min=f"({last}", count=1)
    if nxt:
        ages.append(_age_s(_text(nxt[0][0]), now_ms))
    unread = int(lag) if lag is not None else None
    if unread is None and not nxt:
        unread = 0
    return RecorderLag(
        group=True, pending=pending, unread=unread, oldest_age_s=max(ages) if ages else None
    )


def ensure_group(client: redis.Redis) -> None:
    """Create the recorder's consumer group (reading the stream from its start) if missing."""
    try:
        client.xgroup_create(keys.EVENTS, keys.RECORDER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class Recorder:
    """Reads events through the consumer group and records them in batches."""

    def __init__(
        self,
        store: JobStore,
        client: redis.Redis,
        *,
        consumer: str | None = None,
        batch_size: int | None = None,
        block_s: float | None = None,
        claim_idle_s: float | None = None,
    ) -> None:
        settings = store.settings
        self.store = store
        self.client = client
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size or settings.recorder_batch_size
        self.block_ms = max(1, int((block_s or settings.recorder_poll_s) * 1000))
        self.claim_idle_ms = int((claim_idle_s or settings.recorder_claim_idle_s) * 1000)
        self.stats = RecorderStats()
        self._stop = threading.Event()
        self._own_from: str | None = "0"
        self._claim_from = "0-0"
        self._next_claim = 0.0
        self._rejected: list[str] = []

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    # ------------------------------------------------------------------ loop

    def run(self) -> RecorderStats:
        """Record until :meth:`stop`; survives broker and database outages."""
        self._wait_for_group()
        log.info(
            "recorder %s: reading %s (group %s) into %s",
            self.consumer,
            keys.EVENTS,
            keys.RECORDER_GROUP,
            self.store.url,
        )
        delay, down_since = 0.2, None
        while not self._stop.is_set():
            try:
                self.step()
            except redis.RedisError as exc:
                if "NOGROUP" in str(exc):
                    log.warning(
                        "the stream or its consumer group is gone (broker reset?); recreating"
                    )
                    self._wait_for_group()
                    self._own_from, self._claim_from = "0", "0-0"
                    continue
                if not unavailable(exc):
                    raise
                if down_since is None:
                    down_since = time.monotonic()
                    what = "refuses writes" if refuses_writes(exc) else "unreachable"
                    log.error("broker %s (%s); retrying with backoff", what, exc)
                # A batch recorded but not acknowledged is ours to read again.
                self._own_from = "0"
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            if down_since is not None:
                log.warning("broker reachable again after %.1fs", time.monotonic() - down_since)
                delay, down_since = 0.2, None
        return self.stats

    def _wait_for_group(self) -> None:
        """Make sure the consumer group exists, waiting through a broker outage."""
        delay = 0.2
        while not self._stop.is_set():
            try:
                ensure_group(self.client)
                return
            except redis.RedisError as exc:
                if not unavailable(exc):
                    raise
                log.error("broker unreachable (%s); waiting for it", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    def drain(self) -> RecorderStats:
        """Record until nothing is left to read (for tests and benchmarks), then return."""
        ensure_group(self.client)
        block_ms, self.block_ms = self.block_ms, 0
        try:
            while not self._stop.is_set() and self.step():
                pass
        finally:
            self.block_ms = block_ms
        return self.stats

    def step(self) -> int:
        """Read one batch, record it, acknowledge it; return how many entries it held."""
        entries = self._read()
        if entries:
            self._handle(entries)
        return len(entries)

    # ------------------------------------------------------------------ read

    def _read(self) -> list[tuple[Any, Any]]:
        if self._own_from is not None:
            # Our own pending entries first (a restart under the same consumer name).
            reply: Any = self.client.xreadgroup(
                keys.RECORDER_GROUP,
                self.consumer,
                {keys.EVENTS: self._own_from},
                count=self.batch_size,
            )
            entries = list(reply[0][1]) if reply else []
            if entries:
                self._own_from = _text(entries[-1][0])
                return entries
            self._own_from = None
        if time.monotonic() >= self._next_claim:
            claimed = self._claim()
            if claimed:
                return claimed
        block = self.block_ms or None
        reply_: Any = self.client.xreadgroup(
            keys.RECORDER_GROUP,
            self.consumer,
            {keys.EVENTS: ">"},
            count=self.batch_size,
            block=block,
        )
        return list(reply_[0][1]) if reply_ else []

    def _claim(self) -> list[tuple[Any, Any]]:
        """Take over entries another (crashed or stuck) recorder left pending too long."""
        reply: Any = self.client.xautoclaim(
            keys.EVENTS,
            keys.RECORDER_GROUP,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_from,
            count=self.batch_size,
        )
        next_id, claimed = _text(reply[0]), list(reply[1])
        gone = reply[2] if len(reply) > 2 else []
        if gone:
            log.warning(
                "%d pending events were trimmed from %s before they were recorded (lost)",
                len(gone),
                keys.EVENTS,
            )
        self._claim_from = next_id
        if next_id == "0-0":
            # A full pass over the pending entries: look again after a while.
            self._next_claim = time.monotonic() + self.claim_idle_ms / 2000.0
            self._forget_idle_consumers()
        if claimed:
            log.info("claimed %d events left pending by another recorder", len(claimed))
        return claimed

    def _forget_idle_consumers(self, idle_s: float = 3600.0) -> None:
        """Remove consumers (recorders gone for good) that hold nothing and were idle an hour."""
        limit_ms = max(idle_s * 1000, 10 * self.claim_idle_ms)
        for consumer in self.client.xinfo_consumers(keys.EVENTS, keys.RECORDER_GROUP):
            name = _text(consumer["name"])
            if name != self.consumer and not consumer["pending"] and consumer["idle"] > limit_ms:
                self.client.xgroup_delconsumer(keys.EVENTS, keys.RECORDER_GROUP, name)

    # ----------------------------------------------------------------- write

    def _handle(self, entries: list[tuple[Any, Any]]) -> None:
        events: list[SidEvent] = []
        ids: list[str] = []
        bad: list[str] = []
        for raw_id, fields in entries:
            stream_id = _text(raw_id)
            ids.append(stream_id)
            try:
                event = Event.from_stream(fields)
            except MalformedEvent as exc:
                self._malformed(stream_id, str(exc))
                bad.append(stream_id)
                continue
            events.append((merge.sid_number(stream_id), event))
        if events and not self._commit(events, ids):
            return  # stopping during an outage: nothing acknowledged, all stays pending
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(keys.EVENTS, keys.RECORDER_GROUP, *ids)
        recorded = len(events) - len(self._rejected)
        malformed = len(bad) + len(self._rejected)
        if recorded:
            pipe.hincrby(keys.RECORDER_STATS, "recorded", recorded)
        if malformed:
            pipe.hincrby(keys.RECORDER_STATS, "malformed", malformed)
        pipe.execute()
        self.stats.recorded += recorded
        self.stats.malformed += malformed
        self.stats.batches += 1
        self._rejected = []

    def _malformed(self, stream_id: str, reason: str) -> None:
        log.warning(
            "malformed event %s in %s: %s (acknowledged, not recorded)",
            stream_id,
            keys.EVENTS,
            reason,
        )
        self.stats.malformed_ids.append(stream_id)

    def _commit(self, events: list[SidEvent], ids: list[str]) -> bool:
        """Record ``events``, retrying with backoff while the database is unreachable."""
        delay, down_since = 0.2, None
        while True:
            try:
                self._write(events)
            except (OperationalError, InterfaceError) as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    self.stats.outages += 1
                    self._count("outages")
                    log.error(
                        "job store at %s unreachable (%s); retrying with backoff, "
                        "the backlog waits in %s",
                        self.store.url,
                        first_line(exc.orig),
                        keys.EVENTS,
                    )
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            if down_since is not None:
                log.warning(
                    "job store reachable again after %.1fs; recording resumes",
                    time.monotonic() - down_since,
                )
            return True

    def _write(self, events: list[SidEvent]) -> None:
        self._rejected = []
        try:
            skipped = self.store.record(events)
        except (DataError, IntegrityError):
            # Some event holds a value the database refuses: record them one by one, and
            # treat the refused ones as malformed rather than blocking the stream.
            skipped = []
            for sid, event in events:
                try:
                    skipped += self.store.record([(sid, event)])
                except (DataError, IntegrityError) as exc:
                    skipped.append((sid, f"refused by the database: {first_line(exc.orig)}"))
        for sid, reason in skipped:
            stream_id = f"{sid // 1_000_000}-{sid % 1_000_000}"
            self._malformed(stream_id, reason)
            self._rejected.append(stream_id)

    def _count(self, name: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.hincrby(keys.RECORDER_STATS, name, 1)
