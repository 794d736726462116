"""`conveyor worker` as the music and report teams run it: pool autoscale, `%h` names,
daemon options, and a plain `celery worker` refused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from conveyor import Conveyor, Settings
from conveyor.testing import WorkerProcess, wait_until
from conveyor.worker.heartbeats import live_workers


def _pool(pid: int) -> int:
    return len(psutil.Process(pid).children())


def test_profile_autoscale_grows_the_pool_and_names_expand(
    broker_url: str, redis_client: Any, tmp_path: Path
) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text("[profiles.processing]\nautoscale = [1, 3]\n")
    env = {"CONVEYOR_CONFIG": str(config), "CELERY_WORKER_CONCURRENCY": "2"}
    worker = WorkerProcess(broker_url, name="auto@%h", log_path=tmp_path / "w.log", env=env)
    # WorkerProcess fixes --concurrency; drop it so the profile's autoscale applies.
    at = worker.argv.index("--concurrency")
    del worker.argv[at : at + 2]
    worker.name = f"auto@{socket.gethostname()}"
    app = Conveyor(Settings(redis_url=broker_url, home=tmp_path / "home", config_file=config))
    with worker:
        assert _pool(worker.pid) == 1
        [info] = live_workers(redis_client, app.settings.heartbeat_s)
        assert info.name == worker.name  # %h expanded, as Celery does
        assert info.pool_size == "1–3 autoscale (conveyor.toml)"
        jobs = [app.submit("diag.sleep", {"seconds": 4}) for _ in range(3)]
        wait_until(lambda: _pool(worker.pid) == 3, timeout=30, what="the pool to grow to 3")
        for job in jobs:
            assert job.wait(timeout=60).status == "succeeded"
    assert "1–3 autoscale (conveyor.toml)" in worker.log()


def test_plain_celery_worker_is_refused_with_the_command_to_use(
    broker_url: str, redis_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "plainapp.py").write_text(
        "from conveyor import Conveyor\napp = Conveyor()\ncelery = app.celery\n"
    )
    celery_bin = Path(sys.executable).with_name("celery")
    done = subprocess.run(
        [str(celery_bin), "-A", "plainapp:celery", "worker", "--pool", "solo"],
        cwd=tmp_path,
        env=dict(os.environ, REDIS_URL=broker_url, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "conveyor worker --profile" in done.stderr
    assert not live_workers(redis_client, 5.0)


def test_detach_writes_the_pidfile_and_logfile(
    broker_url: str, redis_client: Any, tmp_path: Path
) -> None:
    pidfile, logfile = tmp_path / "w.pid", tmp_path / "w.log"
    env = dict(os.environ, REDIS_URL=broker_url, CONVEYOR_HOME=str(tmp_path / "home"))
    argv = [sys.executable, "-m", "conveyor", "worker", "--profile", "batch", "-n", "d@%h"]
    argv += ["--detach", "--pidfile", str(pidfile), "--logfile", str(logfile)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "started in the background" in done.stdout
    name = f"d@{socket.gethostname()}"
    try:
        wait_until(
            lambda: any(w.name == name for w in live_workers(redis_client, 5.0)),
            timeout=60,
            what="the detached worker to register",
        )
        pid = int(pidfile.read_text().strip())
        assert psutil.pid_exists(pid)
        assert logfile.stat().st_size > 0
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            wait_until(
                lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
                timeout=30,
                what="the worker to stop",
            )
