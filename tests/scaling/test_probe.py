"""The heartbeat file a worker touches, and ``conveyor worker-probe`` reading it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from conveyor.scaling.health import probe
from conveyor.testing import WorkerProcess, wait_until


def run_probe(beat: Path, max_age: str = "2") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor",
            "worker-probe",
            "--file",
            str(beat),
            "--max-age",
            max_age,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_probe_judges_the_file_age(tmp_path: Path) -> None:
    beat = tmp_path / "beat"
    assert probe(beat, 5)[0] is False
    beat.touch()
    os.utime(beat, (100.0, 100.0))
    ok, message = probe(beat, 5, now=103.0)
    assert ok and "3.0s ago" in message
    ok, message = probe(beat, 5, now=110.0)
    assert not ok and "10.0s old" in message


def test_live_worker_passes_and_frozen_worker_fails_the_probe(
    broker_url: str, tmp_path: Path
) -> None:
    beat = tmp_path / "beat"
    worker = WorkerProcess(
        broker_url,
        log_path=tmp_path / "worker.log",
        env={"CONVEYOR_HEARTBEAT_FILE": str(beat), "CONVEYOR_HEARTBEAT_S": "0.5"},
    )
    with worker:
        wait_until(beat.exists, timeout=30, what="the heartbeat file")
        passed = run_probe(beat)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        os.killpg(worker.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: run_probe(beat).returncode == 1, timeout=30, what="the probe to fail"
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGCONT)
