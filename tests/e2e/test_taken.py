"""A second ``conveyor up``, and ``conveyor api`` on a taken port, fail with the one real reason."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.testing import embedded_broker


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def conveyor(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "CONVEYOR_"))
    }
    env.update(CONVEYOR_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_second_up_names_the_running_stack_first(tmp_path: Path, taken_port: int) -> None:
    home = tmp_path / "home"
    with embedded_broker(home):  # what the first `conveyor up` runs for this home
        done = conveyor(home, "up", "--port", str(taken_port))
    assert done.returncode == 1
    assert done.stdout == ""  # no banner, no misleading "port in use" line
    assert done.stderr.startswith(f"error: Conveyor is already up for CONVEYOR_HOME={home}")


def test_api_on_a_taken_port_says_so_before_any_banner(tmp_path: Path, taken_port: int) -> None:
    done = conveyor(tmp_path / "home", "api", "--port", str(taken_port))
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"port {taken_port} on 127.0.0.1 is in use" in done.stderr
