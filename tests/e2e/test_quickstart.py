"""The README's quick start: `conveyor up` with no settings, then submit from Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conveyor import Conveyor, Settings
from conveyor.broker.embedded import discover
from conveyor.testing import wait_until


def test_up_runs_the_stack_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "CONVEYOR_"))
    }
    env["CONVEYOR_HOME"] = str(tmp_path / "home")
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "up", "--profiles", "processing", "--grace", "10"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,  # its own process group, as in a terminal
        )
    try:
        home = tmp_path / "home"
        wait_until(lambda: discover(home), timeout=30, what="the embedded broker")
        worker_log = home / "logs" / "processing-1.log"
        wait_until(
            lambda: worker_log.exists() and b" ready" in worker_log.read_bytes(),
            timeout=60,
            what="the worker",
        )
        app = Conveyor(Settings(home=home))
        assert app.submit("diag.noop", {}).wait(timeout=30).status == "succeeded"
        assert "Conveyor is up" in log.read_text()
        assert "runs and scales the workers of: processing" in log.read_text()
        running = app.submit("diag.sleep", {"seconds": 3, "steps": 3})
        wait_until(lambda: running.state().status == "started", timeout=30, what="the job")
        # Ctrl-C in a terminal signals the whole foreground process group: the
        # broker must outlive the workers' grace, so the running job still finishes.
        os.killpg(up.pid, signal.SIGINT)
        assert running.wait(timeout=20).status == "succeeded"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        code = up.wait(timeout=60)
    assert code == 0, log.read_text()
    assert "Stopped." in log.read_text()
    assert discover(tmp_path / "home") is None
