"""A job's start recorded by the fetch that takes its message: one round trip fewer a job.

Without this, a worker's job costs three round trips: the fetch script, the
``started`` state change, the outcome. The transport's fetch script
(:mod:`conveyor.engine.transport`) can write the ``started`` change itself, in the
same atomic step that takes the message and records it as unacked (for a message
an idle worker took with ``BRPOP``, the script that records it): the same
checks and writes as :mod:`conveyor.events`' script in its ``start`` mode (a job
already finished, cancelled or at a later attempt is refused; ``deliveries`` goes
up by one; live state, event stream, the job's pub/sub channel and Flower's
``task-received`` and ``task-started`` events in one write). The executor then
reads the outcome from the message (the ``conveyor_start`` header the transport
adds) instead of writing it.

It does so only where nothing has to be decided before a job's start, so moving
the write changes no outcome: for the job types :func:`start_types` names (no
``rate_limit``, no ``gpu=`` option, no application middleware with a
``before_start`` or ``before_job`` hook), in a worker that fetches one message per
free process (prefetch multiplier 1, prefork or ``procs``), and for messages
Conveyor wrote (a stock Celery message is adopted first; an ETA is Celery's) whose
job is not in the revoked set (Celery discards those; their live state may have
expired, so the state's own refusal cannot be relied on there). A
job over the delivery limit is still failed right after its start (the limit is
checked after the start in any case). Everything else, and any message from an
older Conveyor, starts in the executor as before.

The one difference a folded start makes: in a prefork worker the ``started`` time
is the fetch's, a pipe hop before the pool process calls the job.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from conveyor import keys
from conveyor.events import RANK, TERMINAL_RANK

if TYPE_CHECKING:
    from conveyor.app import Conveyor

#: The transport option that turns it on for a worker's channels (see :func:`options`).
OPTION = "conveyor_start"
#: The message header that carries the fetch's outcome to the executor.
HEADER = "conveyor_start"

#: Pools that take one message per free process (so a fetched job is a running one).
POOLS = frozenset({"prefork", "solo", "procs"})

# A Lua function for the fetch script: start the job of message `msg` (decoded) if
# its type is one of ARGV[3] ('\n'-framed names), recording it as the events script's
# 'start' mode does. Returns nil when it does not apply (the executor starts it),
# else {applied, status, deliveries, started_at (ARGV[1])}. ARGV[4] the live state's TTL,
# ARGV[5] the stream's MAXLEN, ARGV[6] Flower's channel prefix ('' none), ARGV[2] the
# worker, ARGV[7] its pid, ARGV[8] its UTC offset, ARGV[9] its event clock;
# KEYS[n + 5] the event stream.
LUA = """
-- Base64 by byte codes and one string.char per slice: building strings a few
-- characters at a time costs ten times as much.
local B64 = {string.byte('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', 1, 64)}
local floor = math.floor
local function b64(s)
  local out, n, len = {}, 0, #s
  for i = 1, len - 2, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local v = a * 65536 + b * 256 + c
    out[n + 1] = B64[floor(v / 262144) + 1]
    out[n + 2] = B64[floor(v / 4096) % 64 + 1]
    out[n + 3] = B64[floor(v / 64) % 64 + 1]
    out[n + 4] = B64[v % 64 + 1]
    n = n + 4
  end
  local rest = len % 3
  if rest > 0 then
    local a, b = string.byte(s, len - rest + 1, len)
    local v = a * 65536 + (b or 0) * 256
    out[n + 1] = B64[floor(v / 262144) + 1]
    out[n + 2] = B64[floor(v / 4096) % 64 + 1]
    out[n + 3] = rest == 2 and B64[floor(v / 64) % 64 + 1] or 61
    out[n + 4] = 61
    n = n + 4
  end
  local parts = {}
  for i = 1, n, 4000 do parts[#parts + 1] = string.char(unpack(out, i, math.min(i + 3999, n))) end
  return table.concat(parts)
end
local function celery_event(kind, fields, now)
  local body = {hostname = ARGV[2], utcoffset = tonumber(ARGV[8]), pid = tonumber(ARGV[7]),
    clock = tonumber(ARGV[9]), timestamp = tonumber(now), type = kind}
  for k, v in pairs(fields) do body[k] = v end
  local rk = string.gsub(kind, '-', '.')
  local envelope = {body = b64(cjson.encode(body)), ['content-encoding'] = 'utf-8',
    ['content-type'] = 'application/json', headers = {hostname = ARGV[2]},
    properties = {delivery_mode = 1, delivery_info = {exchange = 'celeryev', routing_key = rk},
      priority = 0, body_encoding = 'base64', delivery_tag = fields['uuid'] .. '.' .. rk}}
  redis.call('PUBLISH', ARGV[6] .. 'celeryev/' .. rk, cjson.encode(envelope))
end
local function start_job(msg, props, stream)
  if ARGV[3] == '' then return nil end
  local headers = msg['headers']
  if type(headers) ~= 'table' or type(msg['body']) ~= 'string' then return nil end
  local name, id, kwr = headers['task'], headers['id'], headers['kwargsrepr']
  if type(name) ~= 'string' or type(id) ~= 'string' or type(kwr) ~= 'string' then return nil end
  if headers['eta'] ~= nil and headers['eta'] ~= cjson.null then return nil end
  if string.sub(kwr, 1, 8) ~= '{"meta":' then return nil end
  if not string.find(ARGV[3], '\\n' .. name .. '\\n', 1, true) then return nil end
  -- Cancelled (its live state may be gone): Celery discards it, so no start either.
  if redis.call('ZSCORE', 'REVOKED_KEY', id) then return nil end
  local ok, kw = pcall(cjson.decode, kwr)
  if not ok or type(kw) ~= 'table' or type(kw['meta']) ~= 'table' then return nil end
  local meta = kw['meta']
  local attempt = meta['attempt']
  if attempt == nil then attempt = 0 end
  if type(attempt) ~= 'number' then return nil end
  local info = props['delivery_info']
  if type(info) ~= 'table' then info = {} end
  local queue = meta['queue']
  if type(queue) ~= 'string' or queue == '' then queue = info['routing_key'] end
  if type(queue) ~= 'string' then return nil end
  -- The worker's clock (ARGV[1], the fetch's time), as the job's other times are.
  local now = ARGV[1]
  if not tonumber(now) then return nil end
  local job = 'JOB_PREFIX' .. id
  local cur = redis.call('HMGET', job, 'status', 'rank', 'attempt', 'deliveries')
  local cur_rank = tonumber(cur[2] or '0')
  local cur_attempt = tonumber(cur[3] or '-1')
  local deliveries = tonumber(cur[4] or '0')
  if cur_rank >= TERMINAL_RANK or (cur[1] and (attempt < cur_attempt or
      (attempt == cur_attempt and START_RANK < cur_rank))) then
    return {0, cur[1] or '', deliveries, now}
  end
  deliveries = redis.call('HINCRBY', job, 'deliveries', 1)
  local fields = {'type', name, 'queue', queue}
  local priority = meta['priority']
  if priority == nil or priority == cjson.null then priority = props['priority'] end
  if type(priority) == 'number' then
    fields[#fields + 1] = 'priority'; fields[#fields + 1] = string.format('%d', priority)
  end
  fields[#fields + 1] = 'worker'; fields[#fields + 1] = ARGV[2]
  fields[#fields + 1] = 'started_at'; fields[#fields + 1] = now
  -- The submitter's own text: a number read back through Lua loses digits.
  local created = string.match(kwr, '"created_at":(%-?[%d%.eE+-]+)')
  if created then fields[#fields + 1] = 'created_at'; fields[#fields + 1] = created end
  local device = meta['device']
  if type(device) ~= 'string' or device == '' then device = 'cpu' end
  fields[#fields + 1] = 'device'; fields[#fields + 1] = device
  fields[#fields + 1] = 'status'; fields[#fields + 1] = 'started'
  fields[#fields + 1] = 'rank'; fields[#fields + 1] = 'START_RANK'
  fields[#fields + 1] = 'attempt'; fields[#fields + 1] = string.format('%d', attempt)
  redis.call('HSET', job, unpack(fields))
  local event = '{"v":SCHEMA,"type":"started","job_id":' .. cjson.encode(id) ..
    ',"job_type":' .. cjson.encode(name) .. ',"queue":' .. cjson.encode(queue) ..
    ',"ts":' .. now .. ',"attempt":' .. string.format('%d', attempt) ..
    ',"deliveries":' .. deliveries .. ',"worker":' .. cjson.encode(ARGV[2]) .. '}'
  local first = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[5], '*', 'e', event)
  redis.call('HSETNX', job, 'first_event', first)
  redis.call('EXPIRE', job, ARGV[4])
  redis.call('PUBLISH', job, event)
  if ARGV[6] ~= '' then
    local args, kwargs = headers['argsrepr'], kwr
    if type(args) ~= 'string' then args = '' end
    celery_event('task-received', {uuid = id, name = name, args = args, kwargs = kwargs,
      retries = attempt, eta = cjson.null, expires = cjson.null, root_id = id,
      parent_id = cjson.null}, now)
    celery_event('task-started', {uuid = id}, now)
  end
  return {1, 'started', deliveries, now}
end
"""
LUA = (
    LUA.replace("TERMINAL_RANK", str(TERMINAL_RANK))
    .replace("START_RANK", str(RANK["started"]))
    .replace("JOB_PREFIX", keys.job(""))
    .replace("REVOKED_KEY", keys.REVOKED)
    .replace("SCHEMA", "1")
)


class Started(NamedTuple):
    """What the fetch made of a job's start (the ``conveyor_start`` header)."""

    applied: bool
    #: The job's status when the start was refused ("" when it had none).
    status: str
    deliveries: int
    started_at: float

    @classmethod
    def of_reply(cls, reply: Any) -> Started:
        """Read the fetch script's start reply."""
        applied, status, deliveries, started_at = reply
        if isinstance(status, bytes):
            status = status.decode()
        if isinstance(started_at, bytes):
            started_at = started_at.decode()
        return cls(bool(int(applied)), str(status or ""), int(deliveries), float(started_at))

    @classmethod
    def of_header(cls, value: Any) -> Started | None:
        """The header's value as the executor receives it (None: not started by the fetch)."""
        if not isinstance(value, list | tuple) or len(value) != 4:
            return None
        return cls(bool(value[0]), str(value[1]), int(value[2]), float(value[3]))


def start_types(app: Conveyor) -> list[str]:
    """The job types whose start a fetch may record: those no middleware decides on
    before their start."""
    from conveyor.middleware.gpu import Gpu
    from conveyor.middleware.ratelimits import RateLimits

    if app.before_job_hooks:
        return []
    # The built-in ones decide only for a rate limit or gpu="required"; any other is
    # an unknown decision.
    if any(type(policy) not in (Gpu, RateLimits) for policy in app.hooks.before_start):
        return []
    return sorted(d.name for d in app.definitions.values() if d.gpu == "none" and not d.rate_limit)


def options(app: Conveyor, *, pool: str, prefetch: int) -> dict[str, Any]:
    """The transport option's value for a worker (empty: the fetch records no start)."""
    types = start_types(app) if pool in POOLS and prefetch == 1 else []
    if not types:
        return {}
    flower = app.celery_events.prefix if app.hooks.flower_events else ""
    return {
        "types": "\n" + "\n".join(types) + "\n",
        "ttl": app.settings.result_expires_s,
        "maxlen": app.settings.events_maxlen,
        "flower": flower,
    }


def fetch_args(config: dict[str, Any], clock: int) -> list[Any]:
    """ARGV[3..9] of the fetch script for a channel with ``config`` (the option's value)."""
    if not config:
        return ["", 0, 0, "", 0, 0, 0]
    return [
        config["types"],
        config["ttl"],
        config["maxlen"],
        config["flower"],
        os.getpid(),
        time.altzone // 3600 if time.daylight else time.timezone // 3600,
        clock,
    ]
