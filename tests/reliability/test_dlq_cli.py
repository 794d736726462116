"""``conveyor dlq``: list, show, replay and purge from a terminal, on a real store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import redis

from conveyor import Conveyor, Settings
from conveyor.store import open_store
from conveyor.store.recorder import Recorder
from conveyor.worker.executor import Execution
from tests.cli import run_conveyor


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``conveyor dlq ARGS`` (in this process: the same command, exit codes and output)."""
    return run_conveyor("dlq", *args, env=dict(env, COLUMNS="200"))


def test_dlq_commands(broker_url: str, tmp_path: Path, redis_client: redis.Redis) -> None:
    home = tmp_path / "home"
    settings = Settings(redis_url=broker_url, home=home)
    app = Conveyor(settings)
    store = open_store(settings)
    store.upgrade()
    dead = []
    for queue in ("critical", "processing"):
        job = app.submit("diag.flaky", {"fail_times": 1, "permanent": True}, queue=queue)
        meta = {"attempt": 0, "queue": queue, "priority": 5}
        payload = {"fail_times": 1, "permanent": True}
        Execution(app, app.definition("diag.flaky"), job.id, payload, meta, "w-1@h").run()
        dead.append(job.id)
    recorder = Recorder(store, app.redis, consumer="test")
    recorder.drain()
    env = {"REDIS_URL": broker_url, "CONVEYOR_HOME": str(home)}

    listed = run_cli(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {d["job_id"] for d in json.loads(listed.stdout)} == set(dead)
    critical = run_cli(env, "list", "--queue", "critical")
    assert dead[0] in critical.stdout and dead[1] not in critical.stdout
    assert "PermanentError" in critical.stdout

    shown = run_cli(env, "show", dead[0])
    assert shown.returncode == 0 and "Traceback" in shown.stdout and "w-1@h" in shown.stdout

    replayed = run_cli(env, "replay", dead[0], "--time-limit", "30", "--json")
    assert replayed.returncode == 0, replayed.stderr
    new_id = json.loads(replayed.stdout)["replayed"][dead[0]]
    assert app.get_job(new_id).state().replay_of == dead[0]
    again = run_cli(env, "replay", dead[0])
    assert again.returncode == 1 and "already" in again.stderr

    assert run_cli(env, "replay").returncode == 2
    unknown = run_cli(env, "replay", "no-such-job")
    assert unknown.returncode == 2 and "no dead letter for job no-such-job" in unknown.stderr
    assert run_cli(env, "purge").returncode == 2

    purged = run_cli(env, "purge", "--queue", "processing", "--yes")
    assert purged.returncode == 0 and "purged 1" in purged.stdout
    recorder.drain()
    remaining = json.loads(run_cli(env, "list", "--include-replayed", "--json").stdout)
    assert [(d["job_id"], d["replayed_as"]) for d in remaining] == [(dead[0], new_id)]
    store.close()
