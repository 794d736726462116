"""ACL users: ``REDIS_USERNAME`` joins the broker URL, and ``conveyor doctor`` names a
command the user may not run in one line (no traceback). Users are made on the
test session's own Valkey and removed afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from conveyor import Conveyor, Settings

PASSWORD = "acl-test-secret"


@pytest.fixture
def acl_user(redis_client: redis.Redis) -> Iterator[tuple[str, str]]:
    """(name, bare URL) of a factory for ACL users on the session broker."""
    made: list[str] = []

    def make(*rules: str) -> str:
        name = f"cv_{uuid.uuid4().hex[:8]}"
        redis_client.acl_setuser(
            name,
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=list(rules),
        )
        made.append(name)
        return name

    port = redis_client.connection_pool.connection_kwargs["port"]
    yield make, f"redis://127.0.0.1:{port}/0"  # type: ignore[misc]
    for name in made:
        redis_client.acl_deluser(name)


def test_redis_username_is_used(acl_user: tuple, settings: Settings) -> None:
    make, bare = acl_user
    user = make("+@all")
    app = Conveyor(
        settings.model_copy(
            update={"redis_url": bare, "redis_username": user, "redis_password": PASSWORD}
        )
    )
    assert urlsplit(app.broker_url).username == user
    assert app.redis.acl_whoami() == user
    job = app.submit("diag.noop", {}, queue="batch")  # a state change runs EVALSHA
    assert job.state().status == "queued"


def test_doctor_names_the_missing_command_in_one_line(acl_user: tuple, tmp_path: Path) -> None:
    make, bare = acl_user
    user = make("+@all", "-evalsha", "-evalsha_ro")
    env = dict(
        os.environ,
        REDIS_URL=bare,
        REDIS_USERNAME=user,
        REDIS_PASSWORD=PASSWORD,
        CONVEYOR_HOME=str(tmp_path),
    )
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "EVALSHA" in line]
    assert len(lines) == 1, done.stdout
    assert f"ACL SETUSER {user} +evalsha" in lines[0] and PASSWORD not in done.stdout
