"""Fixtures for the worker manager's tests: a small topology and a manager subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, Settings

#: Small, fast settings: the manager polls every second and scales down after 3 s.
FAST = {
    "CONVEYOR_AUTOSCALE_POLL_S": "1",
    "CONVEYOR_AUTOSCALE_DOWN_DELAY_S": "3",
    "CONVEYOR_AUTOSCALE_UP_COOLDOWN_S": "5",
    "CONVEYOR_AUTOSCALE_GRACE_S": "15",
    "CONVEYOR_HEARTBEAT_S": "0.5",
}


class ManagerProcess:
    """``conveyor autoscale`` as a subprocess, with its log."""

    def __init__(self, env: dict[str, str], log_path: Path, args: list[str]) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "autoscale", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def log(self) -> str:
        """What the manager printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (warm stop of its workers) and wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


@pytest.fixture
def scaling_env(broker_url: str, tmp_path: Path, redis_client: object) -> dict[str, str]:
    """Environment for a manager and its workers: session broker, private home, tiny profile."""
    config = tmp_path / "conveyor.toml"
    config.write_text(
        "[profiles.processing]\nconcurrency = 1\nworkers = [2, 6]\nprefetch = 1\n"
        "max_tasks_per_child = 1000\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "CELERY_"))}
    env.update(FAST)
    env["REDIS_URL"] = broker_url
    env["CONVEYOR_HOME"] = str(tmp_path / "home")
    env["CONVEYOR_CONFIG"] = str(config)
    return env


@pytest.fixture
def scaling_app(scaling_env: dict[str, str]) -> Conveyor:
    """An app with the same settings as the manager (to submit and read status)."""
    return Conveyor(
        Settings(
            redis_url=scaling_env["REDIS_URL"],
            home=Path(scaling_env["CONVEYOR_HOME"]),
            config_file=Path(scaling_env["CONVEYOR_CONFIG"]),
            heartbeat_s=0.5,
            autoscale_poll_s=1,
        )
    )


@pytest.fixture
def start_manager(scaling_env: dict[str, str], tmp_path: Path) -> Iterator[object]:
    """Start ``conveyor autoscale ARGS``; every started manager is stopped after the test."""
    started: list[ManagerProcess] = []

    def start(*args: str, **extra_env: str) -> ManagerProcess:
        log = tmp_path / f"manager-{len(started)}.log"
        manager = ManagerProcess({**scaling_env, **extra_env}, log, list(args))
        started.append(manager)
        return manager

    yield start
    for manager in started:
        manager.stop()
