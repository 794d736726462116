"""Leases on in-flight deliveries, and the rescue of a dead worker's deliveries.

kombu's Redis transport keeps every delivered, unacknowledged message in the
``unacked`` hash and its delivery time in the ``unacked_index`` sorted set, and
puts it back in its queue only when that time is older than the visibility
timeout — by design longer than the longest hard time limit, an hour or more.
So a worker whose main process dies hands its jobs back an hour late, and a job
that runs longer than the timeout runs twice. Conveyor closes both gaps, as
Sidekiq's reliable fetch and BullMQ's stalled-job check do:

* **Held sets.** The transport records each delivery tag in the worker's held
  set (``conveyor:held:{worker}``) in the same round trip that records it as
  unacked, and removes it in the ack's round trip; ``conveyor:holders`` lists
  the workers that have held sets.
* **Leases.** Each heartbeat (``CONVEYOR_HEARTBEAT_S``) of a live worker renews
  the ``unacked_index`` score of every delivery it still holds, in the
  heartbeat's own round trip. A running job is therefore never older than the
  visibility timeout, and kombu's sweep never restores it, however long it runs.
* **Rescue.** After each heartbeat, every worker runs one Lua script over the
  holders: a worker whose heartbeat is older than three intervals is dead, and
  each of its deliveries whose lease is just as old goes back to the head of its
  queue (kombu's restore format: the same message, flagged ``redelivered``, on
  the list of its priority level); then the dead worker's records are dropped.
  The script is atomic, so any number of workers can run it at once, and kombu's
  own sweep, racing it, finds the entry gone. A worker also re-queues deliveries
  in its *own* held set whose lease it stopped renewing (a channel lost to a
  broker restart left them behind).

After a broker outage a worker waits one lease period before it rescues other
workers' deliveries, so that live workers can renew their leases first.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from conveyor import keys
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY
from conveyor.worker.heartbeats import MISSED_BEATS

log = logging.getLogger("conveyor.worker")

#: kombu's key names for its unacknowledged-message bookkeeping.
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"

_RESCUE = """
local workers, holders, unacked, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local beat_cutoff, lease_cutoff = tonumber(ARGV[1]), tonumber(ARGV[2])
local me, prefix, known, sep = ARGV[3], ARGV[4], cjson.decode(ARGV[5]), ARGV[6]
local others, limit = ARGV[7] == '1', tonumber(ARGV[8])
local minp, maxp = tonumber(ARGV[9]), tonumber(ARGV[10])
local out = {}
local budget = limit
for _, name in ipairs(redis.call('SMEMBERS', holders)) do
  if budget <= 0 then break end
  local beat = redis.call('ZSCORE', workers, name)
  local dead = (not beat) or tonumber(beat) < beat_cutoff
  if (dead and others) or name == me then
    local held = prefix .. name
    for _, tag in ipairs(redis.call('SMEMBERS', held)) do
      if budget <= 0 then break end
      local entry = redis.call('HGET', unacked, tag)
      local lease = redis.call('ZSCORE', index, tag)
      if not entry then
        -- acknowledged or restored by someone else meanwhile
        redis.call('SREM', held, tag)
        if lease then redis.call('ZREM', index, tag) end
      elseif (not lease) or tonumber(lease) < lease_cutoff then
        local decoded = cjson.decode(entry)
        local msg, rk = decoded[1], decoded[3]
        if type(msg) == 'table' and known[rk] then
          if type(msg['headers']) == 'table' then msg['headers']['redelivered'] = true end
          local props = msg['properties']
          if type(props) == 'table' and type(props['delivery_info']) == 'table' then
            props['delivery_info']['redelivered'] = true
          end
          local pri = tonumber(type(props) == 'table' and props['priority'] or nil) or minp
          pri = math.floor(math.max(minp, math.min(maxp, pri)))
          local list = rk
          if pri ~= 0 then list = rk .. sep .. pri end
          redis.call('RPUSH', list, cjson.encode(msg))
          redis.call('HDEL', unacked, tag)
          redis.call('ZREM', index, tag)
          redis.call('SREM', held, tag)
          out[#out + 1] = name
          out[#out + 1] = tag
          out[#out + 1] = list
          budget = budget - 1
        end
      end
    end
    if dead and name ~= me and redis.call('SCARD', held) == 0 then
      redis.call('SREM', holders, name)
      redis.call('DEL', held)
    end
  end
end
return out
"""


class Rescuer:
    """Renews one worker's leases and rescues dead workers' deliveries.

    :meth:`renew` adds the lease renewal to the heartbeat's pipeline;
    :meth:`rescue` runs the rescue script. ``queues`` are the queue names whose
    messages the script may restore (Conveyor's queues: their routing key is the
    queue's name); anything else is left to kombu's own sweep.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        interval_s: float,
        queues: list[str],
        *,
        batch: int = 500,
    ) -> None:
        self.client = client
        self.name = name
        self.interval_s = interval_s
        self.lease_s = interval_s * MISSED_BEATS
        self.batch = batch
        self._known = json.dumps(dict.fromkeys(queues, True))
        self._script = client.register_script(_RESCUE)
        self._hold_others_until = 0.0
        self._failing = False
        #: Every rescued delivery so far: (worker, delivery tag, list), for logs and tests.
        self.rescued = 0

    def renew(self, pipe: Any) -> None:
        """Add the renewal of this worker's leases to ``pipe`` (the heartbeat's)."""
        # Imported here: the scaling commands read this module's keys without kombu.
        from conveyor.engine.transport import held_tags

        tags = held_tags()
        if tags:
            now = time.time()
            pipe.zadd(UNACKED_INDEX, dict.fromkeys(tags, now), xx=True)
        pipe.sadd(keys.HOLDERS, self.name)

    def release_all(self) -> list[tuple[str, str, str]]:
        """Re-queue every delivery this worker holds, leased or not: its process is known
        to be dead (a ``procs`` consumer that was killed or exited under its jobs)."""
        self._hold_others_until = float("inf")
        return self.rescue(now=time.time() + self.lease_s + 10**9)

    def beat_failed(self) -> None:
        """The heartbeat could not reach the broker: hold off rescuing others after it."""
        self._failing = True

    def rescue(self, now: float | None = None) -> list[tuple[str, str, str]]:
        """Re-queue dead workers' (and this worker's orphaned) deliveries; return them."""
        now = time.time() if now is None else now
        if self._failing:
            # Back after an outage: let live workers renew their leases first.
            self._failing = False
            self._hold_others_until = now + self.lease_s + self.interval_s
        others = now >= self._hold_others_until
        found: list[tuple[str, str, str]] = []
        while True:
            reply = self._script(
                keys=[keys.WORKERS, keys.HOLDERS, UNACKED, UNACKED_INDEX],
                args=[
                    now - self.lease_s,
                    now - self.lease_s,
                    self.name,
                    keys.worker_held(""),
                    self._known,
                    keys.PRIORITY_SEP,
                    "1" if others else "0",
                    self.batch,
                    MIN_PRIORITY,
                    MAX_PRIORITY,
                ],
            )
            batch = [
                (w.decode(), t.decode(), q.decode())
                for w, t, q in zip(reply[::3], reply[1::3], reply[2::3], strict=True)
            ]
            found.extend(batch)
            if len(batch) < self.batch:
                break
        if found:
            self.rescued += len(found)
            by_worker: dict[str, int] = {}
            for worker, _, _ in found:
                by_worker[worker] = by_worker.get(worker, 0) + 1
            for worker, count in sorted(by_worker.items()):
                whose = "its own orphaned" if worker == self.name else f"dead worker {worker}'s"
                log.warning("rescue: %s re-queued %d of %s deliveries", self.name, count, whose)
        return found
