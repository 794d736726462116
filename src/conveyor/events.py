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

Event JSON (one object; ``type``-specific fields are listed in :class:`Event`)::

    {"v": 1, "type": "progress", "job_id": "…", "job_type": "diag.sleep",
     "queue": "processing", "attempt": 0, "deliveries": 1,
     "worker": "processing-1@host", "ts": 1763731200.123,
     "progress": 50.0, "stage": "step 3/6", "message": "…"}
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel

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


class Event(BaseModel):
    """The documented shape of an event (for readers; writers build dicts directly)."""

    v: int = SCHEMA_VERSION
    type: EventType
    job_id: str
    job_type: str
    queue: str
    priority: int | None = None
    attempt: int = 0
    deliveries: int = 0
    worker: str | None = None
    ts: float
    # queued / scheduled
    payload: dict[str, Any] | None = None
    due_at: float | None = None
    idempotency_key: str | None = None
    created_at: float | None = None
    # progress
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
    # failed (the dead letter's failure time)
    failed_at: float | None = None


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
        event: dict[str, Any] | None,
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


def parse(raw: bytes | str) -> dict[str, Any]:
    """Decode one event as written to the stream or a channel."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("event is not a JSON object")
    return data
