"""The README's quick start: `conveyor up` with no settings, then submit from Python."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from conveyor import Conveyor, Settings
from conveyor.broker.embedded import discover
from conveyor.testing import wait_until


def test_up_runs_the_stack_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "CONVEYOR_"))
    }
    env["CONVEYOR_HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "300"  # no wrapped lines in the log
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
        # How to submit from another terminal, with the command and home that work.
        assert f"{sys.executable} -m conveyor submit diag.sleep" in log.read_text()
        assert f"CONVEYOR_HOME={home}" in log.read_text()
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


def test_up_stops_everything_when_its_terminal_hangs_up(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "CONVEYOR_"))
    }
    env.update(CONVEYOR_HOME=str(tmp_path / "home"), CONVEYOR_AUTOSCALE="false")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    up = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "up", "--profiles", "monitoring", "--port", port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        home = tmp_path / "home"
        broker = wait_until(lambda: discover(home), timeout=30, what="the embedded broker")
        beat = home / "heartbeats" / f"monitoring-1@{os.uname().nodename}.beat"
        wait_until(beat.exists, timeout=60, what="the worker's first heartbeat")
        os.killpg(up.pid, signal.SIGHUP)  # what closing the terminal sends
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(timeout=60)
    assert discover(home) is None
    wait_until(lambda: not psutil.pid_exists(broker["pid"]), timeout=10, what="the broker to stop")


def test_ctrl_c_stops_everything_when_stdout_is_a_closed_pipe(tmp_path: Path) -> None:
    # `conveyor up | tee up.log`, then Ctrl-C: tee dies with the group, so up's
    # "Stopping" line meets a broken pipe; the stack must still be stopped.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "CONVEYOR_"))
    }
    env.update(CONVEYOR_HOME=str(tmp_path / "home"), CONVEYOR_AUTOSCALE="false")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    up = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "up", "--profiles", "monitoring", "--port", port],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if b"Press Ctrl-C to stop." in line:
                break
        home = tmp_path / "home"
        beat = home / "heartbeats" / f"monitoring-1@{os.uname().nodename}.beat"
        wait_until(beat.exists, timeout=60, what="the worker's first heartbeat")
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 4  # broker, recorder, API, worker (and its pool)
        up.stdout.close()  # the reader is gone: every later write is EPIPE
        os.killpg(up.pid, signal.SIGINT)
        up.wait(timeout=60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=30)
    for orphan in alive:  # do not leave them running when the claim fails
        with contextlib.suppress(psutil.Error):
            orphan.kill()
    assert not alive, f"orphaned: {[p.pid for p in alive]}"
    assert discover(home) is None
