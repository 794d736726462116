"""Acks ride on the next fetch: one round trip fewer per job, and nothing left unleased."""

from __future__ import annotations

from typing import Any

import redis
from kombu import Connection, Consumer, Message
from kombu import Queue as KombuQueue

from conveyor import Conveyor, keys
from conveyor.engine.transport import held_tags
from conveyor.worker.rescue import UNACKED, UNACKED_INDEX

WORKER = "acks-test@host"


def _consume(conn: Connection, got: list[Message]) -> Consumer:
    def on_message(_body: Any, message: Message) -> None:
        got.append(message)

    consumer = Consumer(
        conn, [KombuQueue("processing", routing_key="processing")], callbacks=[on_message]
    )
    consumer.qos(prefetch_count=1)
    consumer.consume()
    return consumer


def _next(conn: Connection, got: list[Message], count: int) -> Message:
    for _ in range(20):  # the first fetch may load the script (an empty round)
        if len(got) >= count:
            break
        try:
            conn.drain_events(timeout=1)
        except TimeoutError:
            continue
    assert len(got) >= count
    return got[count - 1]


def test_an_ack_stays_leased_until_the_next_fetch_carries_it(
    app: Conveyor, redis_client: redis.Redis, broker_url: str
) -> None:
    for _ in range(2):
        app.submit("diag.noop", {}, queue="processing")
    options = {**app.celery.conf.broker_transport_options, "conveyor_worker": WORKER}
    got: list[Message] = []
    conn = Connection(broker_url, transport=app.celery.conf.broker_transport)
    conn.transport_options = options
    with conn:
        _consume(conn, got)
        first = _next(conn, got, 1)
        tag = first.delivery_tag
        first.ack()
        # Not sent yet: still unacked, still in the worker's held set, still leased.
        assert redis_client.hexists(UNACKED, tag)
        assert redis_client.sismember(keys.worker_held(WORKER), tag)
        assert tag in held_tags()
        second = _next(conn, got, 2)
        # The fetch that took the second job removed the first one's records.
        assert not redis_client.hexists(UNACKED, tag)
        assert redis_client.zscore(UNACKED_INDEX, tag) is None
        assert not redis_client.sismember(keys.worker_held(WORKER), tag)
        assert redis_client.hexists(UNACKED, second.delivery_tag)
        second.ack()
    # Closing the connection sends the last ack: nothing is left behind.
    assert redis_client.hlen(UNACKED) == 0
    assert redis_client.zcard(UNACKED_INDEX) == 0
    assert not redis_client.smembers(keys.worker_held(WORKER))
