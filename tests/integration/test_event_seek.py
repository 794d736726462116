"""Resuming a job's events from ``Last-Event-ID: 0-0`` reads the job's span of the
stream, not the whole stream: its cost does not grow with other jobs' events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from conveyor import Conveyor, keys
from conveyor.api import create_app
from conveyor.api.hub import EventHub
from conveyor.events import new_event
from tests.stack import ServerThread, free_port


@pytest.fixture
def served(app: Conveyor) -> Iterator[tuple[str, EventHub]]:
    """The API (auth off, loopback) in this process, and its event hub."""
    asgi = create_app(app, auth=False)
    port = free_port()
    with ServerThread(asgi, port):
        hub = asgi.state.ctx.hub
        assert hub is not None
        yield f"http://127.0.0.1:{port}", hub


def _unrelated(client: redis.Redis, count: int) -> None:
    pipe = client.pipeline(transaction=False)
    for _ in range(count):
        other = new_event("progress", str(uuid.uuid4()), "diag.noop", "batch", progress=1.0)
        pipe.xadd(keys.EVENTS, {"e": json.dumps(other)})
    pipe.execute()


def _replay_from_zero(url: str, job_id: str) -> list[str]:
    kinds: list[str] = []
    headers = {"Last-Event-ID": "0-0"}
    with (
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as reply,
    ):
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line.startswith("data:"):
                kinds.append(json.loads(line[5:])["type"])
    return kinds


@pytest.mark.parametrize("before", [2_000, 20_000])
def test_resume_from_zero_reads_only_the_jobs_span(
    app: Conveyor, redis_client: redis.Redis, served: tuple[str, EventHub], before: int
) -> None:
    url, hub = served
    _unrelated(redis_client, before)
    job = app.submit("diag.noop", {}, queue="generation")
    writer = app.event_writer()
    writer.emit(new_event("started", job.id, "diag.noop", "generation"))
    _unrelated(redis_client, 50)
    writer.emit(new_event("succeeded", job.id, "diag.noop", "generation"))
    read_before = hub.entries_read
    assert _replay_from_zero(url, job.id) == ["queued", "started", "succeeded"]
    read = hub.entries_read - read_before
    # The job's three events and the 50 between them: never the thousands before.
    assert read <= 60, read
