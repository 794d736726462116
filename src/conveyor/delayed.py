"""Delayed jobs live on the broker, not in worker memory.

Celery's ETA/countdown parks a message inside the worker that fetched it; on
Redis a delay longer than the visibility timeout then runs the job twice or
more (kombu#337, celery#2599). Conveyor instead keeps each delayed submission
in a sorted set scored by its due time, and a *mover* (one thread in every
worker) publishes it to its queue when due.

A mover claims due entries atomically by pushing their score a lease into the
future; then it publishes each one and removes it in **one atomic step**
(:func:`conveyor.enqueue.move`), only while the entry still holds its claim.
Several movers never claim the same entry; a mover that dies after claiming
leaves the entry to reappear when the lease ends, so nothing is lost, and an
attempt is published once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from conveyor import keys
from conveyor.submission import Submission
from conveyor.ticker import Ticker

log = logging.getLogger(__name__)

CLAIM_LEASE_S = 60.0

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
if #due == 0 then return {} end
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
local specs = redis.call('HMGET', KEYS[2], unpack(due))
local out = {}
for i, id in ipairs(due) do out[#out + 1] = id; out[#out + 1] = specs[i] or '' end
return out
"""


# Remove an entry only if it still carries this mover's claim: a job scheduled again
# meanwhile keeps its new entry.
_RELEASE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def unschedule(pipe: Any, job_id: str) -> None:
    """Remove a delayed submission (when cancelled)."""
    pipe.zrem(keys.DELAYED, job_id)
    pipe.hdel(keys.DELAYED_JOBS, job_id)


class Mover:
    """Moves due delayed submissions into their queues through ``publish``.

    ``publish(submission, claim)`` must publish a claimed entry and remove it from the
    delayed set in one atomic step, only while the entry's score is still ``claim``,
    and say whether it did (:func:`conveyor.enqueue.move`; :func:`conveyor.enqueue.mover`
    builds an app's mover).
    """

    def __init__(
        self,
        client: redis.Redis,
        publish: Callable[[Submission, float], bool],
        *,
        poll_s: float = 0.5,
        batch: int = 100,
    ) -> None:
        self.client = client
        self.publish = publish
        self.poll_s = poll_s
        self.batch = batch
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._ticker = Ticker("conveyor-mover", poll_s, self._tick, immediate=True)
        self._failing = False

    def move_due(self, now: float | None = None) -> int:
        """Publish every submission due by ``now``; return how many were moved."""
        moved = 0
        while True:
            now = time.time() if now is None else now
            lease = now + CLAIM_LEASE_S
            reply = self._claim(
                keys=[keys.DELAYED, keys.DELAYED_JOBS],
                args=[now, lease, self.batch],
            )
            if not reply:
                return moved
            pairs = list(zip(reply[::2], reply[1::2], strict=True))
            for raw_id, raw_entry in pairs:
                job_id = raw_id.decode()
                if not raw_entry:  # its entry is gone: nothing to publish
                    self._release(keys=[keys.DELAYED, keys.DELAYED_JOBS], args=[job_id, lease])
                    continue
                try:
                    submission = Submission.from_json(raw_entry)
                except ValueError as exc:
                    # Kept (it reappears when the claim ends) for someone to look at.
                    log.error("delayed job %s is not a submission (%s); left in place", job_id, exc)
                    continue
                if self.publish(submission, lease):
                    moved += 1
            if len(pairs) < self.batch:
                return moved

    def _seconds_to_next(self) -> float:
        head = self.client.zrange(keys.DELAYED, 0, 0, withscores=True)
        if not head:
            return self.poll_s
        return max(0.0, min(self.poll_s, float(head[0][1]) - time.time()))

    def _tick(self) -> float:
        """Move what is due; the seconds until the next round (broker errors: 1 s)."""
        try:
            self.move_due()
            wait = self._seconds_to_next()
            if self._failing:
                log.info("delayed-job mover reconnected")
                self._failing = False
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("delayed-job mover cannot reach the broker: %s", exc)
            self._failing = True
            wait = 1.0
        return wait

    def run(self) -> None:
        """Move due jobs until :meth:`stop` is called; broker errors are logged and retried."""
        self._ticker.run()

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._ticker.start()

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`."""
        self._ticker.stop()
