"""The local back end on its own: memory limits, orphan safety, and how `up` hands it workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil

from conveyor import Conveyor, Settings
from conveyor.scaling.backends.base import BackendError
from conveyor.scaling.backends.local import LocalBackend
from conveyor.scaling.stack import hand_to_manager
from conveyor.services.supervisor import plan_services, plan_workers
from conveyor.testing import wait_until
from conveyor.topology import default_topology
from conveyor.worker.heartbeats import live_workers


def test_worker_over_its_memory_limit_is_replaced(
    scaling_env: dict[str, str], scaling_app: Conveyor
) -> None:
    settings = scaling_app.settings.model_copy(update={"worker_memory_limit_mb": 1.0})
    app = Conveyor(settings)
    backend = LocalBackend(app, env=scaling_env, grace_s=5)
    try:
        backend.scale("processing", 1)
        wait_until(lambda: live_workers(app.redis, 0.5), timeout=60, what="the worker to register")
        [event] = backend.check_health()
        assert event.worker == "processing-1@" + os.uname().nodename
        assert "over the 1 MiB limit" in event.reason
        assert backend.current("processing") == 1
    finally:
        backend.close(5)


def test_workers_stop_when_the_manager_is_killed(scaling_app: Conveyor, start_manager: Any) -> None:
    manager = start_manager("--profiles", "processing")
    workers = wait_until(
        lambda: len(found := live_workers(scaling_app.redis, 0.5)) == 2 and found,
        timeout=90,
        what="2 workers",
    )
    os.kill(manager.process.pid, signal.SIGKILL)
    manager.process.wait(timeout=10)
    wait_until(
        lambda: not any(psutil.pid_exists(w.pid) for w in workers),
        timeout=60,
        what="the orphaned workers to shut down",
    )


def test_up_hands_autoscaled_profiles_to_the_manager(tmp_path: Path) -> None:
    topology = default_topology()
    settings = Settings(
        home=tmp_path, autoscale_profiles="processing,batch", autoscale_min_workers=2
    )
    workers, services = hand_to_manager(
        settings, topology, plan_workers(topology), plan_services(settings), grace_s=10
    )
    assert sorted(w.profile for w in workers) == ["critical", "generation", "monitoring"]
    # PROFILE-N@host counts within the profile, not across the stack's profiles.
    assert sorted(w.name.split("@")[0] for w in workers) == [
        "critical-1",
        "generation-1",
        "monitoring-1",
    ]
    [manager] = [s for s in services if s.name == "autoscale"]
    assert manager.argv == ("autoscale", "--profiles", "processing,batch", "--grace", "9")

    off = Settings(home=tmp_path, autoscale=False)
    workers, services = hand_to_manager(off, topology, plan_workers(topology), plan_services(off))
    assert len(workers) == len(topology.profiles)
    assert all(s.name != "autoscale" for s in services)

    only = Settings(home=tmp_path)
    workers, services = hand_to_manager(
        only, topology, plan_workers(topology, ["processing"]), plan_services(only)
    )
    assert workers == []
    # With no minimum configured, the local stack starts one worker per profile.
    assert [s.argv for s in services if s.name == "autoscale"] == [
        ("autoscale", "--profiles", "processing", "--bounds", "processing=1:10")
    ]


def test_up_sizes_reach_the_managers_workers(
    tmp_path: Path, scaling_env: dict[str, str], scaling_app: Conveyor
) -> None:
    # `up -c processing=N` must size the workers the manager starts, not vanish.
    topology = default_topology()
    settings = Settings(home=tmp_path, autoscale_min_workers=2)
    _, services = hand_to_manager(
        settings,
        topology,
        plan_workers(topology, ["processing", "batch"], {"processing": 1}),
        plan_services(settings),
        sizes={"processing": 1},
    )
    [manager] = [s for s in services if s.name == "autoscale"]
    assert manager.argv == (
        "autoscale",
        "--profiles",
        "processing,batch",
        "--concurrency",
        "processing=1",
    )

    backend = LocalBackend(scaling_app, env=scaling_env, grace_s=5, sizes={"processing": 2})
    try:
        backend.scale("processing", 1)
        [worker] = wait_until(
            lambda: live_workers(scaling_app.redis, 0.5), timeout=60, what="the worker to register"
        )
        assert worker.concurrency == 2  # the test profile says 1
    finally:
        backend.close(5)


def test_crash_looping_workers_are_not_restarted_forever(
    scaling_env: dict[str, str], scaling_app: Conveyor
) -> None:
    broken = {**scaling_env, "CONVEYOR_APP": "no_such_module:app"}
    backend = LocalBackend(scaling_app, env=broken, grace_s=1)

    def refused() -> str:
        try:
            backend.scale("processing", 1)
        except BackendError as exc:
            return str(exc)
        return ""

    try:
        message = wait_until(refused, timeout=90, interval=0.2, what="the crash-loop guard")
        assert "processing workers keep exiting" in message
        assert "processing-1.log" in message
    finally:
        backend.close(1)
