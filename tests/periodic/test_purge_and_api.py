"""Purging a queue cancels its waiting jobs (live state and store); the schedules API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conveyor import Conveyor, Settings, keys
from conveyor.api import create_app
from conveyor.cli.main import _register, cli
from conveyor.client.purge import purge_queue
from conveyor.errors import NotFound
from conveyor.services import apikeys
from conveyor.store import JobStore, open_store
from conveyor.store.recorder import Recorder
from tests.periodic import apps


@pytest.fixture
def store_app(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Conveyor]:
    """The test application with an SQLite job store."""
    configured = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'jobs.db'}"})
    app = apps.build(configured)
    store = open_store(configured)
    store.upgrade()
    store.close()
    yield app


def _store(app: Conveyor) -> JobStore:
    return open_store(app.settings)


def test_purge_cancels_waiting_jobs_in_live_state_and_store(
    store_app: Conveyor, redis_client: redis.Redis
) -> None:
    app = store_app
    waiting = [app.submit("diag.noop", {}, queue="batch", priority=p).id for p in (0, 5, 10)]
    running = app.submit("diag.noop", {}, queue="processing").id  # another queue: untouched
    app.celery.send_task("plain.celery.task", queue="batch", routing_key="batch")

    report = purge_queue(app, "batch")

    assert sorted(report.cancelled) == sorted(waiting)
    assert report.foreign == 1
    assert all(redis_client.llen(keys.queue_list("batch", lvl)) == 0 for lvl in range(11))
    assert {app.get_job(j).state().status for j in waiting} == {"cancelled"}
    assert app.get_job(running).state().status == "queued"
    store = _store(app)
    try:
        Recorder(store, app.redis, consumer="test").drain()
        assert {store.get_job(j).status for j in waiting} == {"cancelled"}  # type: ignore[union-attr]
    finally:
        store.close()


def test_purge_cli(
    store_app: Conveyor, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", store_app.settings.redis_url or "")
    monkeypatch.setenv("CONVEYOR_HOME", str(store_app.settings.home))
    job = store_app.submit("diag.noop", {}, queue="batch")
    _register()
    out = CliRunner().invoke(cli, ["purge", "batch", "--yes", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["cancelled"] == [job.id]
    unknown = CliRunner().invoke(cli, ["purge", "nope", "--yes"])
    assert isinstance(unknown.exception, NotFound)


def test_schedules_and_purge_over_the_api(store_app: Conveyor, redis_client: redis.Redis) -> None:
    store = _store(store_app)
    admin = apikeys.create_key(store.engine, "ops", ["admin", "read"]).secret
    reader = apikeys.create_key(store.engine, "t", ["read"]).secret
    store.close()
    with TestClient(create_app(store_app, auth=True)) as client:
        as_admin = {"Authorization": f"Bearer {admin}"}
        as_reader = {"Authorization": f"Bearer {reader}"}
        listed = client.get("/api/v1/schedules", headers=as_reader)
        assert listed.status_code == 200
        assert [s["name"] for s in listed.json()] == ["tick"]
        assert client.post("/api/v1/schedules/tick/pause", headers=as_reader).status_code == 403
        paused = client.post("/api/v1/schedules/tick/pause", headers=as_admin).json()
        assert paused["paused"] is True
        ran = client.post("/api/v1/schedules/tick/run-now", headers=as_admin)
        assert ran.status_code == 202 and ran.json()["last_job_id"]
        assert (
            client.post("/api/v1/schedules/tick/resume", headers=as_admin).json()["paused"] is False
        )
        assert client.post("/api/v1/schedules/nope/pause", headers=as_admin).status_code == 404

        job_id = ran.json()["last_job_id"]
        assert client.post("/api/v1/queues/batch/purge", headers=as_reader).status_code == 403
        purged = client.post("/api/v1/queues/batch/purge", headers=as_admin).json()
        assert purged["cancelled"] == [job_id]
        assert store_app.get_job(job_id).state().status == "cancelled"


def test_resource_history_over_the_api(store_app: Conveyor, redis_client: redis.Redis) -> None:
    from conveyor.monitor.publish import publish, sample

    data = sample(cpu_interval_s=0.0)
    for _ in range(3):
        publish(store_app.redis, data, history=2)
    store = _store(store_app)
    reader = apikeys.create_key(store.engine, "t", ["read"]).secret
    store.close()
    with TestClient(create_app(store_app, auth=True)) as client:
        answer = client.get(
            "/api/v1/monitoring/resources/history",
            headers={"Authorization": f"Bearer {reader}"},
        ).json()
    host = data["hostname"]
    assert answer["latest"][host]["at"] == data["at"]
    assert len(answer["history"][host]) == 2
