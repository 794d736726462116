"""Rate limits per job type, shared by every worker.

Celery's own ``rate_limit`` is counted per worker process group: three workers
with ``"10/m"`` run 30 jobs a minute. Conveyor counts on the broker instead: a
job type with ``rate_limit="10/m"`` keeps a sliding-window log of its recent
starts (the sorted set ``conveyor:jobrate:{type}``), and one Lua script, timed by
the broker's own clock, either records a start or says how long until the oldest
one leaves the window. So at most N jobs of the type start in any window, however
many workers run them.

A job over the limit is not failed and does not wait in a worker: it goes back
to the delayed set (``conveyor:delayed``) for the moment a slot frees up (plus a
small spread, so that many waiting jobs do not all come back at once), with the
same attempt number — a rate-limited job uses none of its retries.
"""

from __future__ import annotations

import random
import re
import uuid

import redis

from conveyor import keys
from conveyor.errors import ConfigurationError

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")

# KEYS[1] the type's log, KEYS[2] the job's live state;
# ARGV[1] limit, ARGV[2] window (s), ARGV[3] log member.
# Returns {1, 0} (started), {0, seconds to wait} or {-1, 0} (job already finished).
_ACQUIRE = """
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return {-1, '0'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""


def parse_rate(rate: str, job_type: str = "") -> tuple[int, float]:
    """``"10/m"`` → ``(10, 60.0)``: N per second, minute, hour or day (``"5/10s"`` too)."""
    match = _RATE.match(rate.lower()) if isinstance(rate, str) else None
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None or int(match.group(1)) < 1:
        where = f"job {job_type!r}: " if job_type else ""
        raise ConfigurationError(
            f"{where}rate_limit {rate!r} is not N/period, e.g. '10/m', '5/s', '100/h', '3/10s'"
        )
    span = float(match.group(2) or 1.0)
    if span <= 0:
        raise ConfigurationError(f"rate_limit {rate!r}: the period must be above 0")
    return int(match.group(1)), span * unit


class RateLimiter:
    """Takes slots from job types' shared sliding windows on the broker."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(_ACQUIRE)

    def acquire(self, job_type: str, rate: str, job_id: str) -> float | None:
        """Take a slot for one start of ``job_id``.

        Returns 0 when the job may start now, the seconds to wait when the window is
        full, or None when the job has already finished (cancelled meanwhile).
        """
        limit, window = parse_rate(rate, job_type)
        member = f"{job_id}:{uuid.uuid4().hex[:8]}"
        allowed, wait = self._script(
            keys=[keys.rate_limit(job_type), keys.job(job_id)], args=[limit, window, member]
        )
        if int(allowed) == 1:
            return 0.0
        if int(allowed) == -1:
            return None
        # Spread waiting jobs over one slot's length so they do not all return at once.
        return max(0.01, float(wait)) + random.uniform(0.0, window / limit)
