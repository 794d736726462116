"""The backlog counts every priority list, reserved-but-not-started work and jobs due soon."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from conveyor import Conveyor
from conveyor.events import new_event
from conveyor.scaling.backlog import average_job_time, for_queues, job_times, measure
from conveyor.scaling.metrics import (
    backlog_json,
    profile_backlog_json,
    prometheus_text,
    serve_metrics,
)


def test_backlog_reads_every_level_reserved_and_due_soon(app: Conveyor, redis_client: Any) -> None:
    for _ in range(3):
        app.submit("diag.noop", {}, queue="processing")
    for _ in range(2):
        app.submit("diag.noop", {}, queue="processing", priority=9)
    app.submit("diag.noop", {}, queue="processing", delay=0.5)
    app.submit("diag.noop", {}, queue="processing", delay=3600)
    # A real kombu reservation: delivered (in `unacked`), not acknowledged, not started.
    with app.celery.connection_for_read() as conn:
        message = conn.default_channel.basic_get("processing", no_ack=False)
        assert message is not None
        figures = measure(redis_client, app.topology, horizon_s=2.0)["processing"]
        assert (figures.waiting, figures.reserved, figures.due_soon) == (4, 1, 1)
        assert figures.backlog == 6
        # One list, as KEDA's redis scaler reads it, sees a fraction of that.
        assert redis_client.llen("processing") < figures.backlog

        # The JSON form looks one polling interval (10 s) ahead: the same six.
        assert backlog_json(app)["processing"]["backlog"] == 6
        text = prometheus_text(app)
        assert 'conveyor_queue_waiting{queue="processing"} 4' in text
        assert 'conveyor_queue_reserved{queue="processing"} 1' in text
        message.ack()


def test_profile_backlog_sums_its_queues(app: Conveyor, redis_client: Any) -> None:
    app.submit("diag.noop", {}, queue="generation-high")
    app.submit("diag.noop", {}, queue="generation")
    app.submit("diag.noop", {}, queue="batch")
    measured = measure(redis_client, app.topology, horizon_s=1.0)
    profile = app.topology.profile("generation")
    assert for_queues(measured, profile.queues).backlog == 2
    # What a per-profile autoscaler (KEDA, prometheus-adapter) reads.
    assert profile_backlog_json(app)["generation"]["backlog"] == 2
    assert 'conveyor_profile_backlog{profile="generation"} 2' in prometheus_text(app)


def test_manager_endpoint_serves_a_profiles_summed_backlog(app: Conveyor) -> None:
    import httpx

    app.submit("diag.noop", {}, queue="generation-high", priority=9)
    app.submit("diag.noop", {}, queue="generation")
    server = serve_metrics(app, 0)
    assert server is not None
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        answer = httpx.get(f"{base}/profiles/generation", timeout=10).json()
        assert (answer["profile"], answer["backlog"], answer["waiting"]) == ("generation", 2, 2)
        assert httpx.get(f"{base}/profiles/nope", timeout=10).status_code == 404
    finally:
        server.shutdown()


def _succeeded(redis_client: Any, queue: str, runtime: float) -> None:
    event = new_event("succeeded", str(uuid.uuid4()), "diag.noop", queue, runtime_s=runtime)
    redis_client.xadd("conveyor:events", {"e": json.dumps(event)})


def test_average_job_time_reads_recent_successes_of_the_queues(
    app: Conveyor, redis_client: Any
) -> None:
    assert average_job_time(redis_client, ["processing"], 60) is None
    for runtime, queue in ((2.0, "processing"), (4.0, "processing"), (100.0, "batch")):
        _succeeded(redis_client, queue, runtime)
    assert average_job_time(redis_client, ["processing"], 60) == 3.0


def test_job_times_skip_malformed_events(app: Conveyor, redis_client: Any) -> None:
    _succeeded(redis_client, "processing", 2.0)
    now = time.time()
    for bad in (
        '{"type":"succeeded","queue":"processing","runtime_s":50, truncated',  # not JSON
        f'{{"type":"succeeded","queue":"processing","runtime_s":50,"ts":{now}}}',  # no job_id
        f'{{"type":"succeeded","job_id":"j","queue":"processing","runtime_s":50,"ts":"{now}"}}',
        '["succeeded"]',  # not an object
    ):
        redis_client.xadd("conveyor:events", {"e": bad})
    _succeeded(redis_client, "processing", 4.0)
    assert job_times(redis_client, 60) == {"processing": [4.0, 2.0]}
