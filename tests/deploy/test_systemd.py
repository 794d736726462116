"""systemd units: valid for systemd itself, and a stop that lets running jobs finish."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.deploy.systemd import units
from tests.deploy.conftest import overridden, plan_for


def _parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_workers_stop_warm_up_to_the_grace_time() -> None:
    topology = overridden({"profiles": {"processing": {"time_limit": 300}}})
    found = units(plan_for(topology))
    worker = _parse(found["conveyor-worker-processing@.service"])["Service"]
    assert worker["KillSignal"] == "SIGTERM"
    # SIGTERM to Celery's main process only: its warm shutdown, not the pool's death.
    assert worker["KillMode"] == "mixed"
    assert worker["TimeoutStopSec"] == "360"
    assert worker["ExecStart"].endswith("--profile processing --name processing-%i@%H")


def test_gpu_profiles_get_a_unit_per_gpu() -> None:
    found = units(plan_for())
    gpu = _parse(found["conveyor-worker-generation-gpu@.service"])["Service"]
    assert gpu["Environment"] == "CUDA_VISIBLE_DEVICES=%i"
    assert "conveyor-worker-processing-gpu@.service" not in found
    for name in ("conveyor-api.service", "conveyor-recorder.service", "conveyor-beat.service"):
        assert _parse(found[name])["Install"]["WantedBy"] == "conveyor.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_every_unit(tmp_path: Path) -> None:
    conveyor = Path(sys.executable).with_name("conveyor")
    found = units(plan_for(), conveyor=str(conveyor if conveyor.exists() else "/bin/true"))
    names = []
    for name, text in found.items():
        # A template is verified through an instance of it.
        name = name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
        names.append(str(tmp_path / name))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
    assert done.returncode == 0 and problems == [], done.stderr
