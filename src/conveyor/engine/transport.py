"""Conveyor's Redis transport: kombu's, with exact priorities.

kombu's Redis transport numbers priorities the other way round from Conveyor's
(0 first), clamps them to 0–9, folds them into four lists by default, and has
``BRPOP`` walk priority steps before queues — so a priority-0 message on
``batch`` can overtake a priority-9 one on ``critical`` (celery#8967 is one of
the reports of priorities "silently not working"). This transport changes three
things and nothing else:

* levels 0–10 each get a list, named ``queue`` (level 0) and ``queue:1`` …
  ``queue:10``, so a level is never merged with another and list names stay
  printable for redis-cli and KEDA;
* 10 is the most urgent, as Conveyor's API uses it;
* ``BRPOP`` lists the keys queue by queue, most urgent queue first (the
  ``queue_priorities`` transport option), and level by level within a queue;
* a message whose routing key names a Conveyor queue goes straight to it;
* while a queue has a backlog, a message is taken *and* recorded as unacked by
  one script (kombu does ``BRPOP``, then a second round trip to record it — a
  worker that dies between the two loses the message). Only an idle worker
  blocks on ``BRPOP``. Queues consumed without acknowledgement (a ``celery
  inspect`` client's reply queue) are never recorded: nothing would remove them;
* an acknowledgement made while no fetch is outstanding rides on the next fetch
  script instead of costing its own round trip (kombu sends one per ack): the
  job's outcome is already recorded by then, and its delivery stays leased (the
  heartbeat renews it) until the ack reaches the broker, so a worker that dies in
  between hands back a finished job, which is not run again. An ack made while a
  fetch is outstanding (another thread's, or a prefork worker whose other slots
  wait on ``BRPOP``) is sent at once, as kombu does;
* a message that is not a kombu message is rejected and counted instead of
  stopping the worker (:mod:`conveyor.broker.malformed`);
* binding tables written by stock Celery clients (``\\x06\\x16``-separated) are read
  as well as Conveyor's own, so one stock ``celery inspect`` no longer breaks
  every worker's control replies.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import NoScriptError

from conveyor import keys
from conveyor.broker.malformed import envelope_error, reject
from conveyor.compat.stock import SEP as STOCK_SEP
from conveyor.compat.stock import split_binding
from conveyor.engine import start
from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY

LEVELS = tuple(range(MIN_PRIORITY, MAX_PRIORITY + 1))
LEVELS_URGENT_FIRST = tuple(reversed(LEVELS))

# Take the first message of the ordered lists and record it as unacked, atomically,
# in the same format as kombu's QoS.append (so kombu's restore logic applies).
# In a worker (ARGV[2] names it) the delivery tag also goes to the worker's held
# set and the worker to the holders set, for the orphan rescue (conveyor.worker.rescue),
# and the job's start may be recorded too (ARGV[3..9], see conveyor.engine.start).
# ARGV[10]... are delivery tags acknowledged since the last fetch: removed first, as
# kombu's QoS.ack (and the held set) would.
_FETCH = (
    start.LUA
    + """
local n = #KEYS - 5
for a = 10, #ARGV do
  redis.call('ZREM', KEYS[n + 2], ARGV[a])
  redis.call('HDEL', KEYS[n + 1], ARGV[a])
  if ARGV[2] ~= '' then redis.call('SREM', KEYS[n + 3], ARGV[a]) end
end
for i = 1, n do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    -- Not a kombu message (conveyor.broker.malformed): return it unrecorded, to be rejected.
    local ok, msg = pcall(cjson.decode, item)
    local props = ok and type(msg) == 'table' and msg['properties']
    if type(props) ~= 'table' or type(props['delivery_tag']) ~= 'string' then
      return {KEYS[i], item, 0}
    end
    local info = props['delivery_info']
    if info == nil then info = {} end
    if type(info) ~= 'table' then return {KEYS[i], item, 0} end
    local tag = props['delivery_tag']
    redis.call('HSET', KEYS[n + 1], tag, '[' .. item .. ',' ..
      cjson.encode(info['exchange'] or '') .. ',' .. cjson.encode(info['routing_key'] or '') .. ']')
    redis.call('ZADD', KEYS[n + 2], ARGV[1], tag)
    if ARGV[2] ~= '' then
      redis.call('SADD', KEYS[n + 3], tag)
      redis.call('SADD', KEYS[n + 4], ARGV[2])
      -- A start that fails is left to the executor: the message is recorded by now.
      local ok_start, started = pcall(start_job, msg, props, KEYS[n + 5])
      if ok_start and started then return {KEYS[i], item, 1, started} end
    end
    return {KEYS[i], item, 1}
  end
end
return false
"""
)
_FETCH_SHA = hashlib.sha1(_FETCH.encode()).hexdigest()

# A message an idle worker took with BRPOP: record it as unacked and held (ARGV[10] its
# tag, ARGV[11] its unacked entry) and start its job as the fetch script would
# (ARGV[3..9]); KEYS: unacked, unacked_index, held, holders, the event stream.
_RECORD = (
    start.LUA
    + """
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[10])
redis.call('HSET', KEYS[1], ARGV[10], ARGV[11])
redis.call('SADD', KEYS[3], ARGV[10])
redis.call('SADD', KEYS[4], ARGV[2])
local ok, entry = pcall(cjson.decode, ARGV[11])
if not ok or type(entry) ~= 'table' or type(entry[1]) ~= 'table' then return false end
local msg = entry[1]
if type(msg['properties']) ~= 'table' then return false end
local ok_start, started = pcall(start_job, msg, msg['properties'], KEYS[5])
if ok_start and started then return started end
return false
"""
)
_RECORD_SHA = hashlib.sha1(_RECORD.encode()).hexdigest()


class QoS(kombu_redis.QoS):
    """kombu's QoS, minus the second round trip for messages the fetch script recorded.

    In a worker, every delivery tag is also kept in the worker's held set from
    delivery to ack (in the same round trip as kombu's own bookkeeping), so that
    the orphan rescue knows which deliveries a dead worker held.
    """

    def append(self, message: Any, delivery_tag: str) -> None:
        channel = self.channel
        recorded = channel._recorded  # type: ignore[attr-defined]
        if delivery_tag in recorded:
            recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        worker = channel.conveyor_worker  # type: ignore[attr-defined]
        if not worker:
            super().append(message, delivery_tag)
            return
        delivery = message.delivery_info
        entry = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        if channel.conveyor_start and not channel.global_keyprefix:  # type: ignore[attr-defined]
            # Taken by BRPOP (an idle worker): the job's start goes with the record.
            started = self._record_and_start(message, delivery_tag, entry, worker)
            if started is not None:
                message.headers[start.HEADER] = list(started)
            virtual.QoS.append(self, message, delivery_tag)
            return
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, entry)
            pipe.sadd(keys.worker_held(worker), delivery_tag)
            pipe.sadd(keys.HOLDERS, worker)
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)

    def _record_and_start(
        self, message: Any, delivery_tag: str, entry: str, worker: str
    ) -> start.Started | None:
        channel = self.channel
        keys_ = [
            self.unacked_key,
            self.unacked_index_key,
            keys.worker_held(worker),
            keys.HOLDERS,
            keys.EVENTS,
        ]
        channel._start_clock += 2  # type: ignore[attr-defined]
        args = [
            time.time(),
            worker,
            *start.fetch_args(channel.conveyor_start, channel._start_clock),  # type: ignore[attr-defined]
            delivery_tag,
            entry,
        ]
        with channel.conn_or_acquire() as client:  # type: ignore[attr-defined]
            try:
                reply = client.evalsha(_RECORD_SHA, len(keys_), *keys_, *args)
            except NoScriptError:
                client.script_load(_RECORD)
                reply = client.evalsha(_RECORD_SHA, len(keys_), *keys_, *args)
        return start.Started.of_reply(reply) if reply else None

    def ack(self, delivery_tag: str) -> None:
        """Acknowledge ``delivery_tag``: on the next fetch, or now when one is outstanding."""
        if not self.channel.defer_ack(delivery_tag):  # type: ignore[attr-defined]
            self._remove_from_indices(delivery_tag).execute()
        virtual.QoS.ack(self, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        pipe = super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[misc]
        worker = self.channel.conveyor_worker  # type: ignore[attr-defined]
        if worker:
            pipe.srem(keys.worker_held(worker), delivery_tag)
        return pipe

    def held_tags(self) -> list[str]:
        """The delivery tags this channel holds unacknowledged (safe from another thread)."""
        # Acknowledged but not yet sent: still held, so still leased.
        acked: list[str] = self.channel.unsent_acks()  # type: ignore[attr-defined]
        for _ in range(3):
            try:
                return [*(self._delivered or ()), *acked]
            except RuntimeError:  # changed size during iteration: read again
                continue
        return acked


#: The consuming channels of this process (read by the worker's lease renewal).
_channels: weakref.WeakSet[Channel] = weakref.WeakSet()


def held_tags() -> list[str]:
    """Delivery tags held unacknowledged by this process's consuming channels."""
    tags: list[str] = []
    for channel in list(_channels):
        qos = channel.__dict__.get("_qos")
        if qos is not None and not channel.closed:
            tags.extend(qos.held_tags())
    return tags


class Channel(kombu_redis.Channel):
    """A Redis channel whose priority lists and fetch order are Conveyor's."""

    QoS = QoS
    min_priority = MIN_PRIORITY
    max_priority = MAX_PRIORITY
    priority_steps = list(LEVELS)
    sep = keys.PRIORITY_SEP
    queue_priorities: dict[str, int] = {}
    #: The worker's name (the ``conveyor_worker`` transport option), in a worker only.
    conveyor_worker = ""
    #: Which jobs' starts its fetches record (the ``conveyor_start`` transport option,
    #: see :mod:`conveyor.engine.start`), in a worker only.
    conveyor_start: dict[str, Any] = {}
    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        "queue_priorities",
        "conveyor_worker",
        start.OPTION,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._fetch_cache: dict[tuple[str, ...], list[str]] = {}
        self._sync_client: Any = None
        self._sync_client_pool: Any = None
        self._recorded: set[str] = set()
        self._backlog = True
        self._in_fetch = False
        #: Queues consumed with ``no_ack`` (their messages must not be recorded as unacked).
        self._noack_queues: set[str] = set()
        #: Acks waiting for the next fetch, and those the outstanding fetch carries.
        self._acks: list[str] = []
        self._acks_sent: list[str] = []
        self._acks_lock = threading.Lock()
        #: Celery's event clock for the events a fetch writes (two at most per fetch).
        self._start_clock = 0
        super().__init__(*args, **kwargs)
        if self.conveyor_worker:
            _channels.add(self)

    def defer_ack(self, delivery_tag: str) -> bool:
        """Keep ``delivery_tag``'s ack for the next fetch; False when one is outstanding
        (the caller sends it now, as kombu does)."""
        with self._acks_lock:
            if self._in_poll or self._closing or self.closed:
                return False
            self._acks.append(delivery_tag)
            return True

    def unsent_acks(self) -> list[str]:
        """Delivery tags acknowledged here whose ack has not reached the broker yet."""
        with self._acks_lock:
            return [*self._acks, *self._acks_sent]

    def flush_acks(self) -> None:
        """Send the acks kept for the next fetch now (before a blocking fetch, on close)."""
        with self._acks_lock:
            tags, self._acks = self._acks, []
        if not tags:
            return
        try:
            with self.conn_or_acquire() as client:
                pipe = client.pipeline()
                for tag in tags:
                    self.qos._remove_from_indices(tag, pipe)  # type: ignore[attr-defined]
                pipe.execute()
        except Exception:
            with self._acks_lock:
                self._acks[:0] = tags
            raise

    def _acks_done(self, applied: bool) -> None:
        with self._acks_lock:
            if not applied:  # the script did not run: they go with the next fetch
                self._acks[:0] = self._acks_sent
            self._acks_sent = []

    def close(self) -> None:
        """Send the acks kept for the next fetch, then close as kombu does."""
        self._closing = True
        if not self.closed:
            # If the broker is gone, the rescue hands them back later: finished jobs.
            with suppress(Exception):
                self.flush_acks()
        super().close()

    def priority(self, n: Any) -> int:
        """Clamp ``n`` to a level (every level is its own list)."""
        return max(MIN_PRIORITY, min(MAX_PRIORITY, int(n)))

    def _q_for_pri(self, queue: str, pri: Any) -> str:
        return keys.queue_list(queue, self.priority(pri))

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        """Consume ``queue``, remembering whether its messages are acknowledged."""
        if no_ack:
            self._noack_queues.add(queue)
        else:
            self._noack_queues.discard(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def get_table(self, exchange: str) -> list[tuple[str, str, str]]:
        """The bindings of ``exchange``, whether Conveyor or a stock client wrote them."""
        key = self.keyprefix_queue % exchange
        with self.conn_or_acquire() as client:
            values = client.smembers(key)
        table = []
        for value in values:
            entry = split_binding(bytes_to_str(value), STOCK_SEP, self.sep)
            if entry is not None:
                table.append(entry)
        return table

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
        lists = self._fetch_order(queues)
        self._in_fetch = (
            self._backlog
            and not self.global_keyprefix
            and not self._noack_queues.intersection(queues)
        )
        acks: list[str] = []
        if self._in_fetch:
            with self._acks_lock:
                acks, self._acks = self._acks, []
                self._acks_sent = acks
        elif self._acks:
            self.flush_acks()  # a blocking fetch may wait a while: ack first
        if self._in_fetch:
            worker = self.conveyor_worker
            keys_ = [
                *lists,
                self.unacked_key,
                self.unacked_index_key,
                keys.worker_held(worker or "-"),
                keys.HOLDERS,
                keys.EVENTS,
            ]
            self._start_clock += 2
            command_args = [
                "EVALSHA",
                _FETCH_SHA,
                len(keys_),
                *keys_,
                time.time(),
                worker,
                *start.fetch_args(self.conveyor_start if worker else {}, self._start_clock),
                *acks,
            ]
        else:
            command_args = ["BRPOP", *lists, timeout or 0]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        if self.global_keyprefix:
            command_args = self.client._prefix_args(command_args)
        self.client.connection.send_command(*command_args)

    def _brpop_read(self, **options: Any) -> bool:
        if not self._in_fetch:
            return self._brpop_read_plain(**options)
        self._in_fetch = False
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVALSHA", **options)
            except NoScriptError:
                # First use, or the broker restarted: load the script, try again.
                self._acks_done(applied=False)
                with self.conn_or_acquire() as client:
                    client.script_load(_FETCH)
                raise Empty() from None
            except self.connection_errors:  # type: ignore[attr-defined]
                # Sent again with the next fetch: removing a removed entry changes nothing.
                self._acks_done(applied=False)
                self.client.connection.disconnect()
                raise
            except Exception:
                self._acks_done(applied=False)
                raise
            self._acks_done(applied=True)
            # The reply is read: no fetch is outstanding while the message is handled
            # (a solo pool runs the job, and acks it, inside this call).
            self._poll_done()
            if not reply:
                self._backlog = False
                raise Empty()
            dest, item, recorded, *started = reply
            return self._take(
                dest,
                item,
                recorded=bool(recorded),
                started=start.Started.of_reply(started[0]) if started else None,
            )
        finally:
            self._poll_done()

    def _brpop_read_plain(self, **options: Any) -> bool:
        # kombu's BRPOP read, with the malformed-message check of ``_take``.
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:  # type: ignore[attr-defined]
                self.client.connection.disconnect()
                raise
            self._poll_done()
            # A message arrived: there may be more, so fetch with the script next.
            self._backlog = bool(reply)
            if not reply:
                raise Empty()
            dest, item = reply
            return self._take(dest, item, recorded=False)
        finally:
            self._poll_done()

    def _poll_done(self) -> None:
        self._in_poll = None
        flush_reauth = getattr(self, "_flush_brpop_reauth", None)
        if flush_reauth is not None:
            flush_reauth()

    def _take(
        self, dest: bytes, item: bytes, *, recorded: bool, started: start.Started | None = None
    ) -> bool:
        """Hand a message taken off list ``dest`` to kombu, or reject a malformed one.

        ``started``: what the fetch made of the job's start, passed on to the executor
        in the message's ``conveyor_start`` header."""
        queue = bytes_to_str(dest).rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(queue)  # type: ignore[attr-defined]
        reason = envelope_error(item)
        if reason is not None:
            with self.conn_or_acquire() as client:
                if recorded:  # the fetch script's checks passed, ours did not: unrecord it
                    tag = loads(bytes_to_str(item))["properties"]["delivery_tag"]
                    self.qos._remove_from_indices(tag).execute()  # type: ignore[attr-defined]
                reject(client, queue, item, reason)
            raise Empty()
        payload = loads(bytes_to_str(item))
        properties = payload["properties"]
        if recorded:
            self._recorded.add(properties["delivery_tag"])
        headers = payload.get("headers")
        if isinstance(headers, dict):
            # Only this fetch says a start was recorded: never a header that came with it.
            if started is None:
                headers.pop(start.HEADER, None)
            else:
                headers[start.HEADER] = list(started)
        # A hand-made message may lack these; Celery reports the queue it came from.
        properties.setdefault("delivery_info", {}).setdefault("routing_key", queue)
        try:
            self.connection._deliver(payload, queue)
        except self.connection_errors:  # type: ignore[attr-defined]
            raise
        except Exception as exc:
            # Celery failed on it (a task header without an id, say): drop it rather
            # than let the exception stop the worker, and every worker it goes to next.
            self.qos.ack(properties["delivery_tag"])
            with self.conn_or_acquire() as client:
                reject(client, queue, item, f"Celery could not take it: {exc!r}")
            raise Empty() from None
        return True

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


TRANSPORT_PATH = "conveyor.engine.transport:Transport"
