"""Faults that once lost jobs or stopped workers, each against a real worker process.

* the broker refusing writes (``OOM`` under ``maxmemory``) while jobs start and end;
* results of every JSON type, strings that look like JSON included, read back exactly;
* malformed messages on a queue.

One private broker (its ``maxmemory`` is changed) and one worker serve the module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from typer.testing import CliRunner

from conveyor import Conveyor, Settings, keys
from conveyor.api import create_app
from conveyor.broker.malformed import counts
from conveyor.cli.main import _register, cli
from conveyor.services import apikeys
from conveyor.store import open_store
from conveyor.testing import WorkerProcess, embedded_broker, wait_until
from tests.chaos.faults_app import ECHO, make_app
from tests.stack import ServerThread, free_port

APP = "tests.chaos.faults_app:app"


@dataclass
class Faults:
    """The module's broker, worker, application and API."""

    url: str
    home: Path
    app: Conveyor
    client: redis.Redis
    worker: WorkerProcess
    api: httpx.Client


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    base = tmp_path_factory.mktemp("faults")
    home = base / "home"
    with embedded_broker(base / "broker") as url:
        settings = Settings(redis_url=url, home=home)
        app = make_app(settings)
        store = open_store(settings)
        store.upgrade()
        admin = apikeys.create_key(store.engine, "ops", ["admin"]).secret
        worker = WorkerProcess(
            url,
            profile="processing",
            concurrency=2,
            app=APP,
            log_path=base / "worker.log",
            env={"CONVEYOR_HOME": str(home)},
        )
        port = free_port()
        client = redis.Redis.from_url(url)
        with (
            ServerThread(create_app(app, auth=True), port),
            worker,
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {admin}"},
                timeout=30,
            ) as api,
        ):
            yield Faults(url, home, app, client, worker, api)
        client.close()
        store.close()


def _alive(faults: Faults) -> None:
    assert faults.worker.process is not None
    assert faults.worker.process.poll() is None, f"worker exited:\n{faults.worker.log()}"


def test_jobs_survive_a_broker_that_refuses_writes(faults: Faults) -> None:
    jobs = [faults.app.submit(ECHO, {"value": i, "seconds": 0.2}) for i in range(12)]
    wait_until(
        lambda: faults.client.hget(keys.job(jobs[0].id), "status") in (b"started", b"succeeded"),
        timeout=60,
        what="the first job started",
    )
    faults.client.config_set("maxmemory-policy", "noeviction")
    faults.client.config_set("maxmemory", 1)  # every write that needs memory is refused
    try:
        wait_until(
            lambda: "broker refuses writes" in faults.worker.log(),
            timeout=60,
            what="the worker met the refusal",
        )
    finally:
        faults.client.config_set("maxmemory", 0)
    lifted = time.monotonic()
    states = [job.wait(timeout=90) for job in jobs]
    print(f"all {len(jobs)} jobs succeeded {time.monotonic() - lifted:.2f}s after the lift")
    assert [s.status for s in states] == ["succeeded"] * len(jobs)
    assert [s.result for s in states] == list(range(len(jobs)))
    _alive(faults)


RESULTS: list[Any] = [
    "plain text",
    "1",
    "null",
    "{}",
    '"quoted"',
    "",
    1,
    2.5,
    True,
    False,
    None,
    [1, "two", None],
    {"a": {"b": [1, 2]}},
]


def test_results_of_every_json_type_read_back_exactly(faults: Faults) -> None:
    jobs = [faults.app.submit(ECHO, {"value": value}) for value in RESULTS]
    if not any(c.name == "status" for c in cli.registered_commands):
        _register()
    runner = CliRunner()
    env = {"REDIS_URL": faults.url, "CONVEYOR_HOME": str(faults.home)}
    for job, value in zip(jobs, RESULTS, strict=True):
        state = job.wait(timeout=60)
        assert state.status == "succeeded", state.error
        assert state.result == value and type(state.result) is type(value)
        assert job.state().result == value
        body = faults.api.get(f"/api/v1/jobs/{job.id}")
        assert body.status_code == 200, body.text
        assert body.json()["result"] == value
        result = faults.api.get(f"/api/v1/jobs/{job.id}/result")
        assert result.status_code == 200, result.text
        assert result.json()["result"] == value
        shown = runner.invoke(cli, ["status", job.id, "--json"], env=env)  # type: ignore[arg-type]
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["result"] == value


MALFORMED = [
    b"[1, 2, 3]",
    b"\x00\xff not json at all",
    b'"a string"',
    b"null",
    b'{"no": "properties"}',
    b'{"properties": {"delivery_tag": 7}}',
    b'{"properties": {"delivery_tag": "t1", "delivery_info": []}, "body": "x"}',
    # A kombu envelope without a Celery task in it: Celery refuses it, and it is counted.
    b'{"properties": {"delivery_tag": "t2", "body_encoding": "base64"}, "body": "%%%"}',
    b'{"properties": {"delivery_tag": "t3"}, "body": "[]", "headers": {"task": "no.such"}}',
]


def test_malformed_messages_are_rejected_and_the_worker_keeps_consuming(faults: Faults) -> None:
    before = counts(faults.client).get("processing", 0)
    # Idle worker: the first is read by BRPOP, the others by the fetch script.
    for raw in MALFORMED:
        faults.client.lpush(keys.queue_list("processing", 0), raw)
    state = faults.app.submit(ECHO, {"value": "after"}).wait(timeout=60)
    assert state.status == "succeeded" and state.result == "after"
    wait_until(
        lambda: counts(faults.client).get("processing", 0) - before == len(MALFORMED),
        timeout=30,
        what="every malformed message counted",
    )
    # Nothing of them is left unacknowledged, to be handed back later.
    wait_until(lambda: faults.client.hlen("unacked") == 0, timeout=30, what="unacked empty")
    _alive(faults)
    assert "rejected a malformed message" in faults.worker.log()
    metrics = faults.api.get("/metrics").text
    assert f'conveyor_malformed_messages_total{{queue="processing"}} {before + len(MALFORMED)}' in (
        metrics.replace(".0\n", "\n")
    )
