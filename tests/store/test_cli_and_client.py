"""What users see: `Job.state()` once live state expired, `conveyor jobs`, `db upgrade`."""

from __future__ import annotations

import json

import pytest
import redis
from tests.store.conftest import emit_jobs
from typer.testing import CliRunner

from conveyor import Conveyor, Settings, keys
from conveyor.client.job import Job
from conveyor.errors import NotFound
from conveyor.events import EventWriter
from conveyor.store import JobStore
from conveyor.store.recorder import Recorder


@pytest.fixture(scope="module")
def cli() -> object:
    from conveyor.cli.main import _register, cli

    if not any(c.name == "jobs" for c in cli.registered_commands):
        _register()
    return cli


def env_for(settings: Settings) -> dict[str, str]:
    return {
        "CONVEYOR_DATABASE_URL": str(settings.database_url),
        "CONVEYOR_HOME": str(settings.home),
        "REDIS_URL": str(settings.redis_url),
    }


def test_job_state_falls_back_to_the_store_once_live_state_expired(
    store: JobStore, store_settings: Settings, writer: EventWriter, redis_client: redis.Redis
) -> None:
    emit_jobs(writer, ["kept", "gone"], fail_every=2)
    Recorder(store, redis_client).drain()
    app = Conveyor(store_settings)
    live = Job(app, "gone").state()
    redis_client.delete(keys.job("gone"))
    stored = Job(app, "gone").state()
    assert stored.status == live.status == "succeeded"
    assert stored.payload == {"n": "gone"} and stored.result == 1
    assert stored.wait_s is not None and stored.run_s is not None
    redis_client.delete(keys.job("kept"))
    failed = Job(app, "kept").state()
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.type == "ValueError"
    with pytest.raises(NotFound):
        Job(app, "never").state()


def test_jobs_command_lists_from_the_store(
    cli: object,
    store: JobStore,
    store_settings: Settings,
    writer: EventWriter,
    redis_client: redis.Redis,
) -> None:
    emit_jobs(writer, [f"j{i}" for i in range(6)], fail_every=3)
    Recorder(store, redis_client).drain()
    runner = CliRunner()
    env = env_for(store_settings)
    result = runner.invoke(cli, ["jobs", "--status", "failed", "--json"], env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [j["id"] for j in listed] == ["j3", "j0"]
    assert listed[0]["error_type"] == "ValueError" and listed[0]["run_s"] is not None
    result = runner.invoke(cli, ["jobs", "--since", "1h", "--limit", "2"], env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0 and "j5" in result.output and "j3" not in result.output
    result = runner.invoke(cli, ["jobs", "--since", "soon"], env=env)  # type: ignore[arg-type]
    assert result.exit_code == 2 and "duration" in result.output
    redis_client.delete(keys.job("j4"))
    result = runner.invoke(cli, ["status", "j4"], env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0 and "succeeded" in result.output and "run time" in result.output


def test_db_upgrade_command(cli: object, store_settings: Settings) -> None:
    runner = CliRunner()
    env = env_for(store_settings)
    first = runner.invoke(cli, ["db", "upgrade"], env=env)  # type: ignore[arg-type]
    assert first.exit_code == 0 and "(empty) -> 0002" in first.output, first.output
    again = runner.invoke(cli, ["db", "upgrade"], env=env)  # type: ignore[arg-type]
    assert again.exit_code == 0 and "up to date" in again.output
