"""Job events: their schema, and how a state change is written.

Every state change is one event, written in **one round trip** by a Lua script
that, atomically:

1. refuses the change when it would move the job backwards (a late ``progress``
   never turns a ``succeeded`` job back into ``started``; an older attempt's
   event never overwrites a newer one's) — terminal states are final;
2. updates the job's live-state hash (``conveyor:job:{id}``) and renews its TTL;
3. appends the event to the ``conveyor:events`` stream (length-bounded), which
   the recorder reads;
4. publishes it on the job's pub/sub channel, which progress bars, SSE and
   WebSocket clients follow.

Event JSON (one object; ``type``-specific fields are listed in :class:`Event`, the
typed, read-only form every reader parses it into)::

    {"v": 1, "type": "progress", "job_id": "…", "job_type": "diag.sleep",
     "queue": "processing", "attempt": 0, "deliveries": 1,
     "worker": "processing-1@host", "ts": 1763731200.123,
     "progress": 50.0, "stage": "step 3/6", "message": "…"}
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic_core import from_json

from conveyor import keys

if TYPE_CHECKING:
    import redis

EventType = Literal[
    "queued", "scheduled", "started", "progress", "retrying", "succeeded", "failed", "cancelled"
]
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
#: How an event meets the job's live state (see :meth:`EventWriter.emit`).
EmitMode = Literal["normal", "init", "start"]

#: Order of states within one attempt; a change to a lower rank is refused.
RANK: dict[str, int] = {
    "queued": 1,
    "scheduled": 1,
    "started": 3,
    "progress": 3,
    "retrying": 5,
    "succeeded": 9,
    "failed": 9,
    "cancelled": 9,
}

#: The rank of the terminal states: a job there takes no further change. The Lua
#: script below and the SQL merge (:mod:`conveyor.store.merge`) both use it.
TERMINAL_RANK = RANK["succeeded"]
assert all(RANK[state] == TERMINAL_RANK for state in TERMINAL)
assert all(rank < TERMINAL_RANK for state, rank in RANK.items() if state not in TERMINAL)

SCHEMA_VERSION = 1


class EventKind(StrEnum):
    """What an event says happened: a job state (docs/architecture.md, "Job states"),
    a ``progress`` report, or one of the two dead-letter events the recorder applies."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    STARTED = "started"
    PROGRESS = "progress"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTER_REPLAYED = "dead_letter_replayed"
    DEAD_LETTER_PURGED = "dead_letter_purged"


_KINDS: dict[str, EventKind] = {kind.value: kind for kind in EventKind}
_DEAD_LETTER_KINDS = frozenset({EventKind.DEAD_LETTER_REPLAYED, EventKind.DEAD_LETTER_PURGED})


class MalformedEvent(ValueError):
    """An entry of the stream that is not a usable event (not JSON, unknown type, no id…)."""


@dataclass(frozen=True)
class Event:
    """One event as read off the stream or a job's channel: typed, validated, read-only.

    :meth:`from_stream` / :meth:`from_json` / :meth:`from_dict` build it (or raise
    :class:`MalformedEvent`); :meth:`fields` / :meth:`to_json` give its wire form.
    An event read from the wire keeps that form exactly, unknown fields included,
    so passing it on changes nothing. A text field holding ``""`` reads as None.
    """

    kind: EventKind
    job_id: str
    ts: float
    #: Always set on a job event; None on a dead-letter event.
    job_type: str | None = None
    queue: str | None = None
    v: int = SCHEMA_VERSION
    attempt: int = 0
    deliveries: int = 0
    worker: str | None = None
    priority: int | None = None
    # queued / scheduled (the submission)
    payload: Any = None
    due_at: float | None = None
    idempotency_key: str | None = None
    created_at: float | None = None
    tenant: str | None = None
    batch_id: str | None = None
    batch_total: int | None = None
    replay_of: str | None = None
    tags: tuple[str, ...] | None = None
    # progress (``message`` also on a worker's ``scheduled``: why it waits)
    progress: float | None = None
    stage: str | None = None
    message: str | None = None
    # succeeded
    result: Any = None
    runtime_s: float | None = None
    # retrying / failed
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retry_in_s: float | None = None
    device: str | None = None
    failed_at: float | None = None
    # dead_letter_replayed
    replayed_as: str | None = None
    # The wire form it was read from (None: built here, see fields()).
    _wire: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EventKind(self.kind))  # "failed" is accepted too
        if self.tags is not None:
            object.__setattr__(self, "tags", tuple(self.tags))

    @property
    def status(self) -> EventKind | None:
        """The job status this event moves to (``started`` for a progress report);
        None for a dead-letter event."""
        if self.kind is EventKind.PROGRESS:
            return EventKind.STARTED
        return None if self.kind in _DEAD_LETTER_KINDS else self.kind

    @property
    def terminal(self) -> bool:
        """Whether the job ends here (succeeded, failed or cancelled)."""
        return self.kind in TERMINAL

    @property
    def is_job_event(self) -> bool:
        """True for a job's state change or progress report; False for a dead-letter event."""
        return self.kind not in _DEAD_LETTER_KINDS

    def has(self, name: str) -> bool:
        """Whether the event carries field ``name`` (a ``null`` value counts as carried)."""
        if self._wire is not None:
            return name in self._wire
        return name in self.fields()

    def fields(self) -> dict[str, Any]:
        """The wire form: a fresh dict, as written to the stream and channel.

        For an event read from the wire, exactly what was read; for one built here,
        ``v``, ``type``, ``job_id``, ``ts`` and every other field that is set.
        """
        if self._wire is not None:
            return dict(self._wire)
        data: dict[str, Any] = {"v": self.v, "type": self.kind.value, "job_id": self.job_id}
        for name in _WIRE_ORDER:
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value) if name == "tags" else value
        data["ts"] = self.ts
        return data

    def to_json(self) -> str:
        """Compact JSON of :meth:`fields` (how :class:`EventWriter` writes it)."""
        return json.dumps(self.fields(), separators=(",", ":"), default=str)

    @classmethod
    def from_stream(cls, entry: Mapping[Any, Any]) -> Event:
        """The event a ``conveyor:events`` entry holds (its field ``e``, bytes or text keys)."""
        if not entry:
            raise MalformedEvent("entry trimmed from the stream before recording")
        raw = entry.get(b"e", entry.get("e"))
        if raw is None:
            raise MalformedEvent("no field 'e'")
        return cls.from_json(raw)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """The event one JSON text holds (a stream entry's ``e``, a channel message)."""
        try:
            data = from_json(raw)  # pydantic's parser: a few times json.loads' speed
        except ValueError:
            try:  # what json.loads alone accepts (a lone surrogate…) is still an event
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise MalformedEvent("not JSON") from None
        return cls._read(data)

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        """Validate a decoded event; :class:`MalformedEvent` says why it is not one.

        Unknown fields are tolerated (and kept in :meth:`fields`). The fields the job
        store records are checked (a wrong type is malformed); the others are read
        leniently (a wrong type reads as None).
        """
        return cls._read(dict(data) if isinstance(data, dict) else data)

    @classmethod
    def _read(cls, data: Any) -> Event:
        """:meth:`from_dict` of a dict no one else holds (kept as the wire form, uncopied)."""
        if not isinstance(data, dict):
            raise MalformedEvent("not a JSON object")
        raw_kind = data.get("type")
        kind = _KINDS.get(raw_kind) if isinstance(raw_kind, str) else None
        if kind is None:
            raise MalformedEvent(f"unknown type {raw_kind!r}")
        values: dict[str, Any] = {"kind": kind, "job_id": _required(data, "job_id")}
        ts = _number("ts", data.get("ts"))
        if ts is None:
            raise MalformedEvent("missing ts")
        values["ts"] = ts
        values["_wire"] = data
        if kind in _DEAD_LETTER_KINDS:
            if kind is EventKind.DEAD_LETTER_REPLAYED:
                values["replayed_as"] = _required(data, "replayed_as")
        else:
            # Only the fields present are read: most events carry a few of them.
            readers = _PROGRESS_READERS if kind is EventKind.PROGRESS else _READERS
            for name, value in data.items():
                reader = readers.get(name)
                if reader is not None and value is not None:
                    values[name] = reader(name, value)
            for name in ("job_type", "queue"):
                if values.get(name) is None:
                    raise MalformedEvent(f"missing {name}")
        # Built without __init__ (which would set every field one by one): the values
        # are already checked, and the class's defaults stand for the fields absent.
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", values)
        return event


#: The fields :meth:`Event.fields` writes for an event built here, in this order.
_WIRE_ORDER = tuple(
    name
    for name in Event.__dataclass_fields__
    if name not in ("kind", "job_id", "ts", "v", "_wire")
)


_TRANSITION = """
local job, stream = KEYS[1], KEYS[2]
local status, rank, attempt = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, maxlen, channel, event, mode = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
-- The enqueue step (see conveyor.enqueue), done first and in the same atomic step:
-- ARGV[9] the delayed-set step for job ARGV[10] on KEYS[3] (scores) and KEYS[4]
-- (entries): '' none; 'add' its entry ARGV[12] due at ARGV[11]; 'claimed' remove
-- the entry a mover claimed until ARGV[11], and do nothing at all unless the entry
-- still holds that claim (another mover took it over, or the job was cancelled).
-- ARGV[13] the job's message to push onto the broker list KEYS[5] ('' none).
-- ARGV[14] = n extra (channel, message) pairs to publish (Celery-format events),
-- then the pairs; then the live-state fields as name, value pairs.
-- mode '' writes no event (a hand-back that leaves the job's state as it is).
local op, entry_id = ARGV[9], ARGV[10]
if op == 'claimed' then
  local score = redis.call('ZSCORE', KEYS[3], entry_id)
  if not score or tonumber(score) ~= tonumber(ARGV[11]) then return {0, '', 0, 0} end
  redis.call('ZREM', KEYS[3], entry_id)
  redis.call('HDEL', KEYS[4], entry_id)
elseif op == 'add' then
  redis.call('HSET', KEYS[4], entry_id, ARGV[12])
  redis.call('ZADD', KEYS[3], ARGV[11], entry_id)
end
if ARGV[13] ~= '' then redis.call('LPUSH', KEYS[5], ARGV[13]) end
local nextra = tonumber(ARGV[14])
local first_field = 15 + 2 * nextra
-- The job's first stream id: a reader resuming from 0-0 seeks there, not to the
-- stream's start (which would scan every other job's events).
local function first_event(id)
  if redis.call('EXISTS', job) == 1 then redis.call('HSETNX', job, 'first_event', id) end
end
local function publish_extra()
  for i = 0, nextra - 1 do redis.call('PUBLISH', ARGV[15 + 2 * i], ARGV[16 + 2 * i]) end
end
if mode == '' then
  publish_extra()
  return {0, '', 0, 1}
end
local cur = redis.call('HMGET', job, 'status', 'rank', 'attempt', 'deliveries')
local cur_rank = tonumber(cur[2] or '0')
local cur_attempt = tonumber(cur[3] or '-1')
local deliveries = tonumber(cur[4] or '0')
local stale = cur_rank >= TERMINAL_RANK or (cur[1] and (attempt < cur_attempt or
    (attempt == cur_attempt and rank < cur_rank)))
if stale then
  if mode == 'init' then
    -- The submitter's own event raced a fast worker: keep what the worker
    -- wrote, fill in what only the submitter knows, and still record it.
    for i = first_field, #ARGV, 2 do redis.call('HSETNX', job, ARGV[i], ARGV[i + 1]) end
    first_event(redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', event))
    publish_extra()
  end
  return {0, cur[1] or '', deliveries, 1}
end
if mode == 'start' then
  deliveries = redis.call('HINCRBY', job, 'deliveries', 1)
  local decoded = cjson.decode(event)
  decoded['deliveries'] = deliveries
  event = cjson.encode(decoded)
end
local fields = {}
for i = first_field, #ARGV do fields[#fields + 1] = ARGV[i] end
if status ~= '' then
  fields[#fields + 1] = 'status'; fields[#fields + 1] = status
  fields[#fields + 1] = 'rank'; fields[#fields + 1] = tostring(rank)
  fields[#fields + 1] = 'attempt'; fields[#fields + 1] = tostring(attempt)
end
if #fields > 0 then redis.call('HSET', job, unpack(fields)) end
first_event(redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', event))
redis.call('EXPIRE', job, ttl)
redis.call('PUBLISH', channel, event)
publish_extra()
return {1, status, deliveries, 1}
""".replace("TERMINAL_RANK", str(TERMINAL_RANK))


class Transition:
    """A state change that was applied or refused, as the script reported it."""

    __slots__ = ("applied", "deliveries", "published", "status")

    def __init__(self, reply: list[Any]) -> None:
        self.applied = bool(int(reply[0]))
        raw = reply[1]
        self.status = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        self.deliveries = int(reply[2])
        #: False only when a mover's claim on a delayed entry was lost: nothing was done.
        self.published = bool(int(reply[3])) if len(reply) > 3 else True


class DelayedStep(NamedTuple):
    """What an enqueue does to the delayed set, in the same atomic step as its event."""

    #: ``"add"``: put ``entry`` on it due at ``score``; ``"claimed"``: remove the entry
    #: a mover claimed until ``score`` (and do nothing at all if it no longer holds it).
    op: Literal["add", "claimed"]
    job_id: str
    score: float
    entry: str = ""


class EventWriter:
    """Writes events and live state for one broker connection."""

    def __init__(self, client: redis.Redis, *, state_ttl_s: int, events_maxlen: int) -> None:
        self.client = client
        self.state_ttl_s = state_ttl_s
        self.events_maxlen = events_maxlen
        self._script = client.register_script(_TRANSITION)

    def emit(
        self,
        event: Event | dict[str, Any] | None,
        *,
        fields: dict[str, Any] | None = None,
        mode: EmitMode = "normal",
        client: Any = None,
        celery: list[tuple[str, str]] | None = None,
        push: tuple[str, str] | None = None,
        delayed: DelayedStep | None = None,
    ) -> Transition:
        """Apply ``event`` (see the module docstring); ``fields`` go to the live-state hash.

        ``client`` may be a pipeline, to batch several jobs' events in one round trip;
        the :class:`Transition` is then read from the pipeline's result. ``celery``
        holds Celery-format events (channel, message) published with the change;
        ``push`` a broker message (list, JSON) and ``delayed`` a change to the delayed
        set, both done in the same atomic step (:mod:`conveyor.enqueue`). With no
        ``event`` (``delayed`` then names the job) only those are done.
        """
        if isinstance(event, Event):
            event = event.fields()
        if event is not None:
            kind = event["type"]
            job_id = event["job_id"]
            status = "" if kind == "progress" else kind
            head: list[Any] = [
                status,
                RANK[kind],
                event.get("attempt", 0),
                self.state_ttl_s,
                self.events_maxlen,
                keys.job_channel(job_id),
                _dumps(event),
                mode,
            ]
        else:
            assert delayed is not None, "an enqueue step without an event names its job"
            job_id, status = delayed.job_id, ""
            head = ["", 0, 0, 0, 0, "", "", ""]
        args = head
        if delayed is None:
            args += ("", "", 0, "")
        else:
            args += delayed
        args.append(push[1] if push is not None else "")
        args.append(len(celery or ()))
        for channel, message in celery or ():
            args.append(channel)
            args.append(message)
        script_keys = [keys.job(job_id), keys.EVENTS, keys.DELAYED, keys.DELAYED_JOBS]
        if push is not None:
            script_keys.append(push[0])
        for name, value in (fields or {}).items():
            if value is None:
                continue
            args.append(name)
            args.append(value if isinstance(value, str | int | float) else _dumps(value))
        reply = self._script(keys=script_keys, args=args, client=client)
        if client is not None:
            return Transition([1, status, 0])
        return Transition(reply)


def new_event(
    kind: EventType, job_id: str, job_type: str, queue: str, **extra: Any
) -> dict[str, Any]:
    """An event dict with the common fields filled in and ``ts`` set to now."""
    event: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": kind,
        "job_id": job_id,
        "job_type": job_type,
        "queue": queue,
        "ts": time.time(),
    }
    event.update(extra)
    return event


#: Compact JSON, values JSON has no type for as their ``str()``. One encoder for every
#: call: ``json.dumps`` with options builds a new one each time.
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _text(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{name} is not a string")
    return value


def _required(data: Mapping[str, Any], name: str) -> str:
    value = _text(name, data.get(name))
    if value is None:
        raise MalformedEvent(f"missing {name}")
    return value


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MalformedEvent(f"{name} is not a number")
    return float(value)


def _count(name: str, value: Any) -> int:
    return int(_number(name, value) or 0)


def _lenient_text(name: str, value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _lenient_number(name: str, value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _version(name: str, value: Any) -> int:
    return value if type(value) is int else SCHEMA_VERSION


def _any(name: str, value: Any) -> Any:
    return value


def _batch_total(name: str, value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _tags(name: str, value: Any) -> tuple[str, ...] | None:
    return tuple(value) if isinstance(value, list) else None


#: How :meth:`Event.from_dict` reads each field of a job event. What the job store
#: records is checked (a wrong type is malformed, as it always was); the rest is read
#: leniently (a wrong type reads as None).
_READERS: dict[str, Callable[[str, Any], Any]] = {
    "job_type": _text,
    "queue": _text,
    "v": _version,
    "attempt": _count,
    "deliveries": _count,
    "worker": _text,
    "priority": _count,
    "payload": _any,
    "due_at": _number,
    "idempotency_key": _text,
    "created_at": _number,
    "tenant": _text,
    "batch_id": _text,
    "batch_total": _batch_total,
    "replay_of": _text,
    "tags": _tags,
    "progress": _lenient_number,
    "stage": _lenient_text,
    "message": _lenient_text,
    "result": _any,
    "runtime_s": _lenient_number,
    "error_type": _text,
    "error_message": _text,
    "traceback": _text,
    "retry_in_s": _number,
    "device": _lenient_text,
    "failed_at": _lenient_number,
}
#: A progress report's own fields are recorded, so checked.
_PROGRESS_READERS = {**_READERS, "progress": _number, "stage": _text, "message": _text}
