"""Conveyor's Redis transport: kombu's, with exact priorities.

kombu's Redis transport numbers priorities the other way round from the seeds
(0 first), clamps them to 0–9, folds them into four lists by default, and has
``BRPOP`` walk priority steps before queues — so a priority-0 message on
``batch`` can overtake a priority-9 one on ``critical`` (celery#8967 is one of
the reports of priorities "silently not working"). This transport changes three
things and nothing else:

* levels 0–10 each get a list, named ``queue`` (level 0) and ``queue:1`` …
  ``queue:10``, so a level is never merged with another and list names stay
  printable for redis-cli and KEDA;
* 10 is the most urgent, as Conveyor's API and the seeds use it;
* ``BRPOP`` lists the keys queue by queue, most urgent queue first (the
  ``queue_priorities`` transport option), and level by level within a queue;
* a message whose routing key names a Conveyor queue goes straight to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from conveyor import keys
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY

LEVELS = tuple(range(MIN_PRIORITY, MAX_PRIORITY + 1))
LEVELS_URGENT_FIRST = tuple(reversed(LEVELS))


class Channel(kombu_redis.Channel):
    """A Redis channel whose priority lists and fetch order are Conveyor's."""

    min_priority = MIN_PRIORITY
    max_priority = MAX_PRIORITY
    priority_steps = list(LEVELS)
    sep = keys.PRIORITY_SEP
    queue_priorities: dict[str, int] = {}
    from_transport_options = (*kombu_redis.Channel.from_transport_options, "queue_priorities")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._fetch_cache: dict[tuple[str, ...], list[str]] = {}
        self._sync_client: Any = None
        self._sync_client_pool: Any = None
        super().__init__(*args, **kwargs)

    def priority(self, n: Any) -> int:
        """Clamp ``n`` to a level (every level is its own list)."""
        return max(MIN_PRIORITY, min(MAX_PRIORITY, int(n)))

    def _q_for_pri(self, queue: str, pri: Any) -> str:
        return keys.queue_list(queue, self.priority(pri))

    def _fetch_order(self, queues: list[str]) -> list[str]:
        key = tuple(queues)
        cached = self._fetch_cache.get(key)
        if cached is None:
            ordered = sorted(queues, key=lambda q: -self.queue_priorities.get(q, 0))
            cached = [self._q_for_pri(q, lvl) for q in ordered for lvl in LEVELS_URGENT_FIRST]
            self._fetch_cache[key] = cached
        return cached

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        # kombu builds a new Redis client object (copying its response callbacks)
        # for every ack and every delivery; one per pool does the same work.
        if client:
            yield client
            return
        pool = self.pool
        if self._sync_client is None or self._sync_client_pool is not pool:
            self._sync_client = self._create_client()  # type: ignore[attr-defined]
            self._sync_client_pool = pool
        yield self._sync_client

    def _brpop_start(self, timeout: float | None = None) -> None:
        # Same as kombu's, but queue-major and most urgent level first.
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))  # type: ignore[attr-defined]
        if not queues:
            return
        command_args = ["BRPOP", *self._fetch_order(queues), timeout or 0]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _lookup(self, exchange: str, routing_key: str, default: Any = None) -> list[str]:
        # A routing key that names a Conveyor queue goes to that queue: no binding
        # lookup (one round trip) per publish, and routing survives a flushed
        # binding table, which would otherwise drop messages silently.
        if routing_key in self.queue_priorities:
            return [routing_key]
        return list(super()._lookup(exchange, routing_key, default))

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        with self.conn_or_acquire() as client:
            for level in LEVELS_URGENT_FIRST:
                item = client.rpop(self._q_for_pri(queue, level))
                if item:
                    self._maybe_update_queues_expire(client, queue)  # type: ignore[attr-defined]
                    return loads(bytes_to_str(item))
            self._maybe_update_queues_expire(client, queue)  # type: ignore[attr-defined]
            raise Empty()


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


TRANSPORT_PATH = "conveyor.broker.transport:Transport"
