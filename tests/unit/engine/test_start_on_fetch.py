"""The fetch records a job's start: the same state, event and Flower events as the
executor's start, in the fetch's round trip (conveyor.engine.start)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu import Connection, Consumer, Message
from kombu import Queue as KombuQueue

from conveyor import Conveyor, keys
from conveyor.engine import start, transport
from conveyor.events import Event, new_event
from conveyor.worker.executor import Execution

WORKER = "start-test@host"


@contextmanager
def fetching(app: Conveyor, config: dict[str, Any]) -> Iterator[Any]:
    """A worker's channel (its fetches record starts per ``config``); yields ``take()``."""
    options = {
        **app.celery.conf.broker_transport_options,
        "conveyor_worker": WORKER,
        start.OPTION: config,
    }
    got: list[Message] = []
    conn = Connection(app.celery.conf.broker_url, transport=app.celery.conf.broker_transport)
    conn.transport_options = options
    with conn:
        consumer = Consumer(
            conn,
            [KombuQueue("processing", routing_key="processing")],
            callbacks=[lambda _body, message: got.append(message)],
        )
        consumer.qos(prefetch_count=1)
        consumer.consume()

        def take() -> Message:
            count = len(got) + 1
            for _ in range(20):  # the first fetch may load the script (an empty round)
                if len(got) >= count:
                    break
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue
            message = got[count - 1]
            message.ack()
            return message

        yield take


def _state(client: redis.Redis, job_id: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = client.hgetall(keys.job(job_id))  # type: ignore[assignment]
    return {k.decode(): v.decode() for k, v in raw.items()}


def _events(client: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    entries = client.xrange(keys.EVENTS)
    events = [Event.from_stream(fields).fields() for _, fields in entries]
    return [e for e in events if e["job_id"] == job_id]


def _celery_bodies(pubsub: Any) -> list[dict[str, Any]]:
    bodies = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is None:
            if bodies and len(bodies) >= 2:
                break
            continue
        if message["type"] != "pmessage":
            continue
        envelope = json.loads(message["data"])
        bodies.append(json.loads(base64.b64decode(envelope["body"])))
    return bodies


def test_the_fetch_writes_the_start_the_executor_would(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    config = start.options(app, pool="prefork", prefetch=1)
    assert "\ndiag.noop\n" in config["types"]
    folded = app.submit("diag.noop", {}, priority=7)
    by_executor = app.submit("diag.noop", {}, priority=7)
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(config["flower"] + "celeryev/task.*")
    pubsub.get_message(timeout=1)
    created_at = redis_client.hget(keys.job(folded.id), "created_at")

    with fetching(app, config) as take:
        first = take()
    with fetching(app, {}) as take:
        second = take()
    assert first.headers["id"] == folded.id and second.headers["id"] == by_executor.id
    assert start.Started.of_header(first.headers[start.HEADER]) is not None
    header = start.Started.of_header(first.headers[start.HEADER])
    assert header is not None and header.applied and header.deliveries == 1
    celery_bodies = _celery_bodies(pubsub)

    # The executor's own start, for the second job (same worker, same message).
    payload, meta = _arguments(second)
    execution = Execution(app, app.definition("diag.noop"), by_executor.id, payload, meta, WORKER)
    assert execution._start(time.time()).applied

    mine, theirs = _state(redis_client, folded.id), _state(redis_client, by_executor.id)
    assert set(mine) == set(theirs)
    for field in ("type", "queue", "priority", "worker", "device", "status", "rank", "attempt"):
        assert mine[field] == theirs[field], field
    assert mine["deliveries"] == "1"
    assert mine["status"] == "started" and mine["worker"] == WORKER
    # The submitter's creation time, digit for digit.
    assert created_at is not None and mine["created_at"] == created_at.decode()
    assert abs(float(mine["started_at"]) - time.time()) < 5
    assert float(mine["started_at"]) == header.started_at

    [queued, started] = _events(redis_client, folded.id)
    [_, executor_started] = _events(redis_client, by_executor.id)
    assert queued["type"] == "queued" and started["type"] == "started"
    assert set(started) == set(executor_started)
    for field in ("v", "type", "job_type", "queue", "attempt", "deliveries", "worker"):
        assert started[field] == executor_started[field], field

    # Flower's events, as Celery's worker would send them, in order.
    kinds = [(b["type"], b["uuid"]) for b in celery_bodies]
    assert kinds[:2] == [("task-received", folded.id), ("task-started", folded.id)]
    received = celery_bodies[0]
    assert received["name"] == "diag.noop" and received["hostname"] == WORKER
    assert received["kwargs"].startswith('{"meta":')
    assert {"args", "retries", "root_id", "clock", "pid", "timestamp", "utcoffset"} <= set(received)


def _arguments(message: Message) -> tuple[Any, dict[str, Any]]:
    """The payload and meta a job's message carries."""
    args, kwargs, _ = json.loads(message.body)
    return args[0], kwargs["meta"]


def test_a_finished_job_is_refused_and_nothing_is_written(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    # A redelivery of a job whose worker died after its outcome, before its ack.
    job = app.submit("diag.noop", {})
    done = new_event("succeeded", job.id, "diag.noop", "processing", worker="gone@host")
    assert app.event_writer().emit(done, fields={"finished_at": time.time()}).applied
    before = _state(redis_client, job.id)
    with fetching(app, start.options(app, pool="procs", prefetch=1)) as take:
        message = take()
    header = start.Started.of_header(message.headers[start.HEADER])
    assert header is not None and not header.applied and header.status == "succeeded"
    assert _state(redis_client, job.id) == before
    assert [e["type"] for e in _events(redis_client, job.id)] == ["queued", "succeeded"]


def test_types_not_named_and_workers_without_the_option_start_in_the_executor(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    other = app.submit("diag.noop", {})
    plain = app.submit("diag.noop", {})
    config = {**start.options(app, pool="prefork", prefetch=1), "types": "\ndiag.sleep\n"}
    with fetching(app, config) as take:
        assert start.HEADER not in take().headers
    with fetching(app, {}) as take:
        assert start.HEADER not in take().headers
    for job in (other, plain):
        assert _state(redis_client, job.id)["status"] == "queued"


def test_the_executor_runs_a_job_started_by_the_fetch_once(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {})
    with fetching(app, start.options(app, pool="prefork", prefetch=1)) as take:
        message = take()
    started = start.Started.of_header(message.headers[start.HEADER])
    payload, meta = _arguments(message)
    execution = Execution(app, app.definition("diag.noop"), job.id, payload, meta, WORKER)
    execution.run(started)
    assert job.wait(timeout=5).status == "succeeded"
    assert [e["type"] for e in _events(redis_client, job.id)] == [
        "queued",
        "started",
        "succeeded",
    ]
    assert _state(redis_client, job.id)["deliveries"] == "1"


def test_no_start_is_folded_where_a_decision_comes_first(app: Conveyor) -> None:
    assert start.options(app, pool="threads", prefetch=1) == {}
    assert start.options(app, pool="prefork", prefetch=4) == {}
    assert "diag.noop" in start.start_types(app)
    assert all(
        app.definition(name).gpu == "none" and not app.definition(name).rate_limit
        for name in start.start_types(app)
    )


def test_a_start_header_that_came_with_the_message_is_dropped(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {}, priority=0)
    target = keys.queue_list("processing", 0)
    raw = redis_client.rpop(target)
    assert raw is not None
    forged = json.loads(raw)
    forged["headers"][start.HEADER] = [1, "started", 1, time.time()]
    redis_client.lpush(target, json.dumps(forged))
    with fetching(app, {}) as take:
        message = take()
    assert message.headers["id"] == job.id
    assert start.HEADER not in message.headers


def test_the_scripts_base64_is_pythons(redis_client: redis.Redis) -> None:
    # Flower's events carry a base64 body, encoded by the fetch script itself.
    encode = redis_client.register_script(start.LUA + "\nreturn b64(ARGV[1])")
    for text in ("", "a", "ab", "abc", "abcd", '{"é":"\\u00e9 / +"}', "x" * 5000):
        data = text.encode()
        assert encode(args=[data]) == base64.b64encode(data), text


def test_a_revoked_job_whose_state_expired_is_left_to_celery_to_discard(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {})
    job.cancel()
    redis_client.delete(keys.job(job.id))
    with fetching(app, start.options(app, pool="prefork", prefetch=1)) as take:
        message = take()
    assert start.HEADER not in message.headers
    assert not redis_client.exists(keys.job(job.id))


def test_an_idle_worker_records_the_start_with_the_message_it_blocked_for(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    # Nothing queued: the worker blocks on BRPOP, which cannot run a script; the
    # message's unacked record then carries the start instead.
    redis_client.script_flush()
    jobs: list[Any] = []
    submit = threading.Timer(0.3, lambda: jobs.append(app.submit("diag.noop", {})))
    with fetching(app, start.options(app, pool="prefork", prefetch=1)) as take:
        submit.start()
        message = take()
        tag = message.delivery_tag
        assert redis_client.sismember(keys.worker_held(WORKER), tag)
        assert redis_client.hexists("unacked", tag)
    assert redis_client.script_exists(transport._RECORD_SHA) == [True]
    [job] = jobs
    header = start.Started.of_header(message.headers[start.HEADER])
    assert header is not None and header.applied and header.deliveries == 1
    state = _state(redis_client, job.id)
    assert state["status"] == "started" and state["worker"] == WORKER
    assert [e["type"] for e in _events(redis_client, job.id)] == ["queued", "started"]
    # Closing sent the ack: nothing is left held.
    assert not redis_client.hexists("unacked", tag)


def test_a_start_that_fails_in_the_script_is_left_to_the_executor(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    job = app.submit("diag.noop", {})
    redis_client.set(keys.job(job.id), "not a hash")  # HMGET fails: WRONGTYPE
    with fetching(app, start.options(app, pool="prefork", prefetch=1)) as take:
        message = take()
    assert message.headers["id"] == job.id
    assert start.HEADER not in message.headers
