"""``conveyor bench --peers``: Conveyor measured, the other queues named when missing.

One short real run (a private Valkey, real workers) with an interpreter that can
import none of the other queues, so the output is the same wherever it runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: A row: the queue, its version, then no-op jobs/s, submit→start p50 and p99.
ROW = r"{label} \S+\s*\W\s*[\d,]+\s*\W\s*[\d.]+\s*\W\s*[\d.]+\s"


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_peers_measures_conveyor_and_names_the_missing_queues(tmp_path: Path) -> None:
    # Without its site-packages this interpreter finds no other queue to import.
    bare = tmp_path / "python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(0o755)
    argv = [sys.executable, "-m", "conveyor", "bench", "--peers", "--peer-python", str(bare)]
    # Plain Celery's row is left out to halve the run: its driver is the one
    # `conveyor bench` has always used.
    argv += ["--jobs", "100", "--latency-jobs", "10", "--io-jobs", "0"]
    argv += ["--only", "conveyor,huey,dramatiq,rq,taskiq,arq"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=280,
        env=dict(os.environ, COLUMNS="200"),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(ROW.format(label="Conveyor"), out), out
    assert "error" not in out, out
    for name, install in [
        ("huey", "pip install huey"),
        ("dramatiq", "pip install 'dramatiq[redis]'"),
        ("rq", "pip install rq"),
        ("taskiq", "pip install taskiq taskiq-redis"),
        ("arq", "pip install arq"),
    ]:
        line = next((x for x in out.splitlines() if x.startswith(f"{name}: ")), "")
        assert "not installed" in line and f"({install}" in line, out
