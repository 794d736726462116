"""Health checks replace a frozen worker without losing its job; pins hold until released."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import Any

from conveyor import Conveyor
from conveyor.scaling import status
from conveyor.testing import wait_until
from conveyor.worker.heartbeats import live_workers


def live(app: Conveyor) -> dict[str, int]:
    return {
        w.name: w.pid
        for w in live_workers(app.redis, app.settings.heartbeat_s)
        if w.profile == "processing"
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_frozen_worker_is_replaced_and_its_job_redelivered(
    scaling_app: Conveyor, start_manager: Any
) -> None:
    app = scaling_app
    manager = start_manager("--profiles", "processing")
    before = wait_until(lambda: len(live(app)) == 2 and live(app), timeout=90, what="2 workers")
    job = app.submit("diag.sleep", {"seconds": 2, "steps": 4}, queue="processing")
    state = wait_until(
        lambda: (s := job.state()).status in ("started", "progress") and s.worker and s,
        timeout=30,
        what="the job to start",
    )
    frozen = str(state.worker)
    os.killpg(before[frozen], signal.SIGSTOP)
    try:
        wait_until(
            lambda: any(
                d["action"] == "replace" and frozen in d["reason"] for d in status(app)["decisions"]
            ),
            timeout=30,
            what=f"the frozen worker's replacement\n{manager.log_path}",
        )
    finally:
        # Never leave a stopped process group behind, whatever happened.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(before[frozen], signal.SIGKILL)
    final = job.wait(timeout=60)
    assert final.status == "succeeded"
    assert final.deliveries >= 2
    replaced = next(d for d in status(app)["decisions"] if d["action"] == "replace")
    assert "heartbeat" in replaced["reason"] and "frozen" in replaced["reason"]
    now = wait_until(
        lambda: len(live(app)) == 2 and live(app)[frozen] != before[frozen] and live(app),
        timeout=90,
        what="the replacement to register",
    )
    assert set(now) == set(before)


def test_manual_scale_pins_until_released(
    scaling_app: Conveyor, scaling_env: dict[str, str], start_manager: Any
) -> None:
    app = scaling_app
    start_manager("--profiles", "processing")
    wait_until(lambda: len(live(app)) == 2, timeout=90, what="2 workers")

    done = cli(scaling_env, "scale", "processing", "3")
    assert done.returncode == 0, done.stderr
    assert "pinned to 3" in done.stdout
    wait_until(lambda: len(live(app)) == 3, timeout=90, what="3 pinned workers")
    shown = json.loads(cli(scaling_env, "scale", "--status", "--json").stdout)
    assert shown["manager"]["backend"] == "local"
    assert shown["profiles"]["processing"]["pinned"] == 3
    assert "pinned to 3" in shown["profiles"]["processing"]["reason"]

    done = cli(scaling_env, "scale", "processing", "--release")
    assert done.returncode == 0 and "released" in done.stdout
    wait_until(lambda: len(live(app)) == 2, timeout=90, what="back to 2 after the release")
    assert status(app)["profiles"]["processing"]["pinned"] is None

    listed = json.loads(cli(scaling_env, "workers", "--json").stdout)
    assert {w["profile"] for w in listed} == {"processing"}
    assert all(w["rss_bytes"] > 0 and w["pid"] > 0 for w in listed)


def test_bad_input_is_refused_clearly(scaling_env: dict[str, str], redis_client: Any) -> None:
    unknown = cli(scaling_env, "scale", "nope", "3")
    assert unknown.returncode == 2 and "unknown profile 'nope'" in unknown.stderr
    negative = cli(scaling_env, "scale", "processing", "-1")  # as a user types it
    assert negative.returncode == 2 and "≥ 0" in negative.stderr
    typo = cli(scaling_env, "scale", "--stauts")
    assert typo.returncode == 2 and "no such option: --stauts" in typo.stderr
    inverted = cli(scaling_env, "autoscale", "--once", "--bounds", "processing=5:2")
    assert inverted.returncode == 2 and "above max" in inverted.stderr


def test_once_against_an_unreachable_kubernetes_api_exits_non_zero(
    scaling_env: dict[str, str], redis_client: Any
) -> None:
    env = {
        **scaling_env,
        "CONVEYOR_AUTOSCALE_BACKEND": "kubernetes",
        "CONVEYOR_K8S_API_URL": "http://127.0.0.1:1",
    }
    done = cli(env, "autoscale", "--once", "--profiles", "processing")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "profile processing" in done.stderr and "127.0.0.1:1" in done.stderr


def test_once_refuses_while_a_manager_runs_and_names_it(
    scaling_env: dict[str, str], redis_client: Any
) -> None:
    import socket

    from conveyor import keys

    # A manager's report, as a running `conveyor up` keeps it fresh (this test's pid: alive).
    manager = {"pid": os.getpid(), "host": socket.gethostname(), "backend": "local"}
    redis_client.set(keys.SCALING_MANAGER, json.dumps({**manager, "profiles": ["processing"]}))
    done = cli(scaling_env, "autoscale", "--once", "--profiles", "processing")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"a worker manager already runs (pid {os.getpid()} on {socket.gethostname()}" in (
        " ".join(done.stderr.split())
    )
    assert not live_workers(redis_client, 5.0)  # and it started none
