"""Schedules: declarations, conveyor.toml overrides, runs, pause/resume/run-now, the unique key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from pydantic import BaseModel
from typer.testing import CliRunner

from conveyor import Conveyor, JobContext, Settings, keys
from conveyor.cli.main import _register, cli
from conveyor.errors import ConfigurationError
from conveyor.schedules import run_now, set_paused, views
from conveyor.services.beat import configure, scheduler_for
from conveyor.testing import WorkerProcess, wait_until
from tests.periodic import apps
from tests.periodic.apps import RUNS_KEY, build


class Report(BaseModel):
    """A report's input."""

    days: int = 1


def report_app(settings: Settings) -> Conveyor:
    app = Conveyor(settings, packs=("diag",))

    @app.periodic("nightly", cron="0 3 * * *", payload={"days": 7}, priority=2)
    @app.job("reports.build")
    def build(ctx: JobContext, params: Report) -> int:
        return params.days

    app.periodic("hourly", job="reports.build", every="1h")
    return app


def test_declarations_and_toml_overrides(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text(
        """
[schedules.hourly]
every = "15m"
payload = { days = 2 }

[schedules.nightly]
enabled = false

[schedules."weekly"]
job = "reports.build"
cron = "0 4 * * 1"
queue = "batch"
"""
    )
    app = report_app(settings.model_copy(update={"config_file": config}))
    found = app.schedules()
    assert found["hourly"].every_s == 900 and found["hourly"].payload == {"days": 2}
    assert found["nightly"].enabled is False and found["nightly"].cron == "0 3 * * *"
    assert found["weekly"].queue == "batch" and found["weekly"].job == "reports.build"
    # The decorator above @app.job schedules that job type.
    assert found["nightly"].job == "reports.build"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[schedules.x]\njob = "reports.build"\nevery = "1h"\ncron = "* * * * *"', "exactly one"),
        ('[schedules.x]\njob = "reports.build"\ncron = "61 * * * *"', "cron"),
        ('[schedules.x]\njob = "nope"\nevery = 5', "unknown job type"),
        ("[schedules.x]\nevery = 5", "needs job"),
        ('[schedules.hourly]\nevry = "1h"', "unknown key"),
        ("[schedules.hourly]\npriority = 11", "priority"),
    ],
)
def test_bad_schedules_are_refused_with_the_table_named(
    settings: Settings, tmp_path: Path, table: str, message: str
) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text(table)
    app = report_app(settings.model_copy(update={"config_file": config}))
    with pytest.raises(ConfigurationError, match=message):
        app.schedules()


def test_beat_entry_submits_an_ordinary_job_and_records_the_run(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = report_app(settings)
    configure(app.celery, app)
    scheduler = scheduler_for(app)(app=app.celery)
    entry = scheduler.Entry.from_key(keys.BEAT_PREFIX + "nightly", app=app.celery)
    job_id = scheduler.apply_async(entry)
    assert job_id is not None
    state = app.get_job(job_id).state()
    assert (state.type, state.status, state.priority) == ("reports.build", "queued", 2)
    assert state.payload == {"days": 7}
    nightly = next(v for v in views(app) if v.name == "nightly")
    assert nightly.last_job_id == job_id and nightly.runs == 1
    assert nightly.next_run_at is not None and nightly.next_run_at > nightly.last_run_at

    set_paused(app, "nightly", True)
    assert scheduler.apply_async(entry) is None
    assert next(v for v in views(app) if v.name == "nightly").paused
    set_paused(app, "nightly", False)
    scheduler.close()


def test_cli_lists_runs_now_and_pauses(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("CONVEYOR_HOME", str(settings.home))
    monkeypatch.setenv("CONVEYOR_APP", "tests.periodic.apps:app")
    monkeypatch.setattr(apps, "app", build(settings))
    _register()
    runner = CliRunner()
    out = runner.invoke(cli, ["schedules", "run-now", "tick"])
    assert out.exit_code == 0, out.output
    assert runner.invoke(cli, ["schedules", "pause", "tick"]).exit_code == 0
    listed = json.loads(runner.invoke(cli, ["schedules", "--json"]).output)
    (tick,) = listed
    assert tick["paused"] and tick["runs"] == 1 and tick["last_job_id"] in out.output
    assert runner.invoke(cli, ["schedules", "resume", "nope"]).exit_code != 0


def test_a_bad_payload_is_recorded_as_the_schedules_error(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = report_app(settings)
    app.periodic("broken", job="reports.build", every=60, payload={"days": "many"})
    assert run_now(app, "broken") is None
    broken = next(v for v in views(app) if v.name == "broken")
    assert broken.last_error and "PayloadInvalid" in broken.last_error


def test_a_unique_job_that_resubmits_itself_keeps_running(
    broker_url: str, redis_client: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    with WorkerProcess(broker_url, app="tests.periodic.apps:app", log_path=tmp_path / "worker.log"):
        build(settings).submit("test.resubmit", {"runs": 3})
        wait_until(
            lambda: int(redis_client.get(RUNS_KEY) or 0) >= 3,
            timeout=60,
            what="three runs of the self-resubmitting job",
        )


def test_up_runs_one_beat() -> None:
    from conveyor.services.supervisor import plan_services

    beats = [s.args() for s in plan_services(Settings()) if s.name == "beat"]
    assert beats == [["beat"]]
