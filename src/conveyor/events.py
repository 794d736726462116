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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from conveyor import keys

if TYPE_CHECKING:
    import redis

EventType = Literal[
    "queued", "scheduled", "started", "progress", "retrying", "succeeded", "failed", "cancelled"
]
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

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
-- ARGV[9] = n extra (channel, message) pairs to publish (Celery-format events),
-- then the pairs; then, when KEYS[3] names a broker list, the job's message to push
-- onto it; then the live-state fields as name, value pairs.
local nextra = tonumber(ARGV[9])
local first_field = 10 + 2 * nextra
-- The job's first stream id: a reader resuming from 0-0 seeks there, not to the
-- stream's start (which would scan every other job's events).
local function first_event(id)
  if redis.call('EXISTS', job) == 1 then redis.call('HSETNX', job, 'first_event', id) end
end
local function publish_extra()
  for i = 0, nextra - 1 do redis.call('PUBLISH', ARGV[10 + 2 * i], ARGV[11 + 2 * i]) end
end
if KEYS[3] then
  -- Submit: the message is enqueued in the same atomic step as its `queued` event.
  redis.call('LPUSH', KEYS[3], ARGV[first_field])
  first_field = first_field + 1
end
local cur = redis.call('HMGET', job, 'status', 'rank', 'attempt', 'deliveries')
local cur_rank = tonumber(cur[2] or '0')
local cur_attempt = tonumber(cur[3] or '-1')
local deliveries = tonumber(cur[4] or '0')
local stale = cur_rank >= 9 or (cur[1] and (attempt < cur_attempt or
    (attempt == cur_attempt and rank < cur_rank)))
if stale then
  if mode == 'init' then
    -- The submitter's own event raced a fast worker: keep what the worker
    -- wrote, fill in what only the submitter knows, and still record it.
    for i = first_field, #ARGV, 2 do redis.call('HSETNX', job, ARGV[i], ARGV[i + 1]) end
    first_event(redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', event))
    publish_extra()
  end
  return {0, cur[1] or '', deliveries}
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
return {1, status, deliveries}
"""


class Transition:
    """A state change that was applied or refused, as the script reported it."""

    __slots__ = ("applied", "deliveries", "status")

    def __init__(self, reply: list[Any]) -> None:
        self.applied = bool(int(reply[0]))
        raw = reply[1]
        self.status = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        self.deliveries = int(reply[2])


class EventWriter:
    """Writes events and live state for one broker connection."""

    def __init__(self, client: redis.Redis, *, state_ttl_s: int, events_maxlen: int) -> None:
        self.client = client
        self.state_ttl_s = state_ttl_s
        self.events_maxlen = events_maxlen
        self._script = client.register_script(_TRANSITION)

    def emit(
        self,
        event: dict[str, Any],
        *,
        fields: dict[str, Any] | None = None,
        mode: Literal["normal", "init", "start"] = "normal",
        client: Any = None,
        celery: list[tuple[str, str]] | None = None,
        push: tuple[str, str] | None = None,
    ) -> Transition:
        """Apply ``event`` (see the module docstring); ``fields`` go to the live-state hash.

        ``client`` may be a pipeline, to batch several jobs' events in one round trip;
        the :class:`Transition` is then read from the pipeline's result. ``celery``
        holds Celery-format events (channel, message) published with the change;
        ``push`` a broker message (list, JSON) enqueued in the same atomic step.
        """
        kind = event["type"]
        status = "" if kind == "progress" else kind
        args: list[Any] = [
            status,
            RANK[kind],
            event.get("attempt", 0),
            self.state_ttl_s,
            self.events_maxlen,
            keys.job_channel(event["job_id"]),
            json.dumps(event, separators=(",", ":"), default=str),
            mode,
            len(celery or ()),
        ]
        for channel, message in celery or ():
            args.append(channel)
            args.append(message)
        script_keys = [keys.job(event["job_id"]), keys.EVENTS]
        if push is not None:
            script_keys.append(push[0])
            args.append(push[1])
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


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def parse(raw: bytes | str) -> dict[str, Any]:
    """Decode one event as written to the stream or a channel."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("event is not a JSON object")
    return data
