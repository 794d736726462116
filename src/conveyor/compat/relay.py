"""Drains the lists stock Celery producers write and Conveyor's workers would not read.

A stock producer writes ``processing\\x06\\x166`` for a priority-5 message (kombu's
priority lists), ``celery`` when it names no queue, ``no-such-queue`` when it
names one Conveyor does not have. The relay (one thread in every worker) moves
such messages, atomically and unchanged, onto a list Conveyor's workers read
first: the most urgent level of the same queue when Conveyor knows it, else of
the default queue. There the worker's job strategy adopts each one at once —
re-submits it at its mapped level on its job type's queue
(:mod:`conveyor.compat.adopt`) — so passing through the urgent list gives it no
head start.

The queues a stock producer declared are found in kombu's binding tables
(``_kombu.binding.*``); ``celery`` is always drained. Control and event
exchanges (``*.pidbox``, ``celeryev``) are left alone: their reply queues
belong to the ``celery inspect`` clients waiting on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import cast

import redis

from conveyor.compat.stock import (
    BINDING_PREFIX,
    DEFAULT_QUEUE,
    SEP,
    is_control_exchange,
    split_binding,
    stock_lists,
)
from conveyor.keys import PRIORITY_SEP, queue_list
from conveyor.ticker import Ticker
from conveyor.topology import MAX_PRIORITY

log = logging.getLogger("conveyor.compat")

# Move up to ARGV[1] messages from the source lists (KEYS[1..n/2]) to their
# destinations (KEYS[n/2+1..n]); RPUSH: they are the next taken from that list.
_MOVE = """
local half = #KEYS / 2
local moved = 0
for i = 1, half do
  while moved < tonumber(ARGV[1]) do
    local item = redis.call('RPOP', KEYS[i])
    if not item then break end
    redis.call('RPUSH', KEYS[half + i], item)
    moved = moved + 1
  end
end
return moved
"""


def stock_queues(client: redis.Redis) -> set[str]:
    """Queue names found in kombu's binding tables, control and event exchanges left out."""
    names = {DEFAULT_QUEUE}
    for raw_key in client.scan_iter(match=f"{BINDING_PREFIX}*", count=500):
        exchange = raw_key.decode()[len(BINDING_PREFIX) :]
        if is_control_exchange(exchange):
            continue
        for raw in cast(set[bytes], client.smembers(raw_key)):
            entry = split_binding(raw.decode(), SEP, PRIORITY_SEP)
            if entry is not None and entry[2]:
                names.add(entry[2])
    return names


def routes(found: Iterable[str], known: Iterable[str], default_queue: str) -> dict[str, str]:
    """Source list → destination list for every list a stock producer may have written."""
    known = set(known)
    moves: dict[str, str] = {}
    for queue in sorted(set(found) | known):
        if queue in known:
            for source in stock_lists(queue, bare=False):
                moves[source] = queue_list(queue, MAX_PRIORITY)
        elif PRIORITY_SEP not in queue:
            for source in stock_lists(queue, bare=True):
                moves[source] = queue_list(default_queue, MAX_PRIORITY)
    return moves


class Relay:
    """Moves stock-named lists' messages onto Conveyor's lists, every ``poll_s``."""

    def __init__(
        self,
        client: redis.Redis,
        known: Iterable[str],
        default_queue: str,
        *,
        poll_s: float = 0.5,
        rescan_s: float = 10.0,
        batch: int = 100,
    ) -> None:
        self.client = client
        self.known = list(known)
        self.default_queue = default_queue
        self.poll_s = poll_s
        self.rescan_s = rescan_s
        self.batch = batch
        self._move = client.register_script(_MOVE)
        self._moves: dict[str, str] = {}
        self._scanned_at = 0.0
        self._ticker = Ticker("conveyor-relay", poll_s, self._tick, immediate=True)
        self._failing = False
        #: Messages moved since start (for logs and tests).
        self.moved = 0

    def move_once(self) -> int:
        """Move what waits on the stock lists now; return how many messages moved."""
        now = time.monotonic()
        if not self._moves or now - self._scanned_at >= self.rescan_s:
            found = stock_queues(self.client)
            self._moves = routes(found, self.known, self.default_queue)
            self._scanned_at = now
        sources = list(self._moves)
        moved = int(
            self._move(keys=[*sources, *(self._moves[s] for s in sources)], args=[self.batch])
        )
        if moved:
            log.info("moved %d message(s) from stock Celery lists", moved)
        self.moved += moved
        return moved

    def _tick(self) -> float | None:
        """One move; at once again after a full batch, else after ``poll_s``."""
        try:
            moved = self.move_once()
            self._failing = False
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("stock-list relay cannot reach the broker: %s", exc)
            self._failing = True
            moved = 0
        return 0.0 if moved >= self.batch else None

    def run(self) -> None:
        """Move until :meth:`stop`; broker errors are logged and retried."""
        self._ticker.run()

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._ticker.start()

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`."""
        self._ticker.stop()
