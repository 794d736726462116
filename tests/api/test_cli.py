"""``conveyor keys`` and ``conveyor api`` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conveyor import Settings
from conveyor.services.supervisor import plan_services
from tests.cli import run_conveyor


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` in this process (the same commands and exit codes, no start-up)."""
    return run_conveyor(*args, env=env)


def run_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` in a subprocess (a refusal that must come before any server)."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_keys_create_list_revoke(broker_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, REDIS_URL=broker_url, CONVEYOR_HOME=str(tmp_path))
    created = run(["keys", "create", "--tenant", "acme", "--scopes", "submit,read", "--json"], env)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("cvk_") and key["scopes"] == ["read", "submit"]
    listed = run(["keys", "list", "--json"], env)
    assert key["key"] not in listed.stdout  # only the hash is stored
    assert [k["id"] for k in json.loads(listed.stdout)] == [key["id"]]
    assert run(["keys", "revoke", key["id"]], env).returncode == 0
    assert json.loads(run(["keys", "list", "--json"], env).stdout)[0]["revoked_at"]
    bad = run(["keys", "create", "--tenant", "acme", "--scopes", "root"], env)
    assert bad.returncode == 2 and "scopes" in bad.stderr


def test_auth_off_is_refused_on_a_non_loopback_bind(broker_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, REDIS_URL=broker_url, CONVEYOR_HOME=str(tmp_path))
    refused = run_process(["api", "--host", "0.0.0.0", "--auth", "off"], env)
    assert refused.returncode == 2 and "loopback" in refused.stderr


def test_up_runs_the_api_on_loopback_by_default() -> None:
    services = {s.name: s.args() for s in plan_services(Settings())}
    assert services["api"] == ["api", "--host", "127.0.0.1", "--port", "8000"]
