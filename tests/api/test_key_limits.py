"""Where a key may submit: never to internal queues; other queues and high priorities
only when the key was created for them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conveyor.services import apikeys
from conveyor.store import open_store
from tests.api.conftest import Api
from tests.api.test_cli import run


@pytest.mark.parametrize("queue", ["dead-letter", "monitoring"])
def test_internal_queues_are_closed_to_every_key(api: Api, queue: str) -> None:
    # Other tests of the module share the broker (their failures reach dead-letter).
    before = api.app.redis.llen(queue)
    for role in ("a", "admin"):
        with api.client(role) as http:
            for _ in range(2):
                reply = http.post("/api/v1/jobs", json={"type": "diag.noop", "queue": queue})
                assert reply.status_code == 422, reply.text
                assert "internal to Conveyor" in reply.json()["detail"]
    assert api.app.redis.llen(queue) == before


def test_a_key_uses_its_types_own_queue_and_the_queues_it_was_given(api: Api) -> None:
    with api.client("b") as http:  # created with no extra queue
        own = http.post("/api/v1/jobs", json={"type": "diag.noop", "queue": "processing"})
        assert own.status_code == 202, own.text
        for _ in range(2):
            other = http.post("/api/v1/jobs", json={"type": "diag.noop", "queue": "critical"})
            assert other.status_code == 403
            assert "--queue critical" in other.json()["detail"]
        batch = http.post(
            "/api/v1/batches", json={"jobs": [{"type": "diag.noop", "queue": "critical"}]}
        )
        assert batch.status_code == 403
    with api.client("a") as http:  # created with --queue critical
        given = http.post("/api/v1/jobs", json={"type": "diag.noop", "queue": "critical"})
        assert given.status_code == 202, given.text


def test_priorities_above_the_keys_limit_are_refused(api: Api) -> None:
    with api.client("b") as http:
        for _ in range(2):
            high = http.post("/api/v1/jobs", json={"type": "diag.noop", "priority": 10})
            assert high.status_code == 403
            assert "priorities up to 7" in high.json()["detail"]
        assert (
            http.post("/api/v1/jobs", json={"type": "diag.noop", "priority": 7}).status_code == 202
        )
    store = open_store(api.app.settings)
    try:
        urgent = apikeys.create_key(
            store.engine, "tenant-u", ["submit"], queues=["critical"], max_priority=10
        )
    finally:
        store.close()
    with api.client(None) as http:
        reply = http.post(
            "/api/v1/jobs",
            json={"type": "diag.noop", "queue": "critical", "priority": 10},
            headers={"Authorization": f"Bearer {urgent.secret}"},
        )
    assert reply.status_code == 202, reply.text


def test_keys_create_options(broker_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, REDIS_URL=broker_url, CONVEYOR_HOME=str(tmp_path))
    made = run(
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--queue",
            "critical",
            "--max-priority",
            "9",
            "--json",
        ],
        env,
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["queues"] == ["critical"] and key["max_priority"] == 9
    listed = json.loads(run(["keys", "list", "--json"], env).stdout)
    assert listed[0]["queues"] == ["critical"] and listed[0]["max_priority"] == 9
    internal = run(["keys", "create", "--tenant", "acme", "--queue", "dead-letter"], env)
    assert internal.returncode == 2 and "internal to Conveyor" in internal.stderr
    unknown = run(["keys", "create", "--tenant", "acme", "--queue", "nope"], env)
    assert unknown.returncode == 2 and "unknown queue" in unknown.stderr
    too_high = run(["keys", "create", "--tenant", "acme", "--max-priority", "11"], env)
    assert too_high.returncode == 2
