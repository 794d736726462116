"""Profile entries the worker manager and ``conveyor worker`` read from ``conveyor.toml``."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor, Settings
from conveyor.errors import ConfigurationError
from conveyor.scaling.manager import managed_profiles, policy_config
from conveyor.topology import apply_overrides, default_topology


def test_workers_prefetch_and_max_tasks_per_child_are_read() -> None:
    topology = apply_overrides(
        default_topology(),
        {"profiles": {"batch": {"workers": [0, 3], "prefetch": 4, "max_tasks_per_child": 50}}},
    )
    batch = topology.profile("batch")
    assert (batch.workers, batch.prefetch, batch.max_tasks_per_child) == ((0, 3), 4, 50)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"workers": [5, 2]}, "min 5 is above max 2"),
        ({"workers": [-1, 2]}, "0 ≤ min ≤ max"),
        ({"prefetch": 0}, "prefetch: must be an integer ≥ 1"),
    ],
)
def test_bad_profile_entries_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        apply_overrides(default_topology(), {"profiles": {"batch": spec}})


def test_bounds_come_from_flags_then_profile_then_settings() -> None:
    topology = apply_overrides(default_topology(), {"profiles": {"batch": {"workers": [1, 3]}}})
    app = Conveyor(Settings(autoscale_min_workers=2, autoscale_max_workers=8), topology=topology)
    assert (
        policy_config(app, "processing").min_workers,
        policy_config(app, "processing").max_workers,
    ) == (2, 8)
    assert policy_config(app, "batch").max_workers == 3
    assert policy_config(app, "batch", (4, 4)).min_workers == 4
    with pytest.raises(ConfigurationError, match="profile batch: min workers \\(5\\) is above"):
        policy_config(app, "batch", (5, 1))


def test_unknown_profile_is_refused() -> None:
    app = Conveyor(Settings())
    with pytest.raises(ConfigurationError, match="unknown profile 'gpu-fast'"):
        managed_profiles(app, ["gpu-fast"])
    assert managed_profiles(app) == list(app.topology.profiles)


def test_manager_workers_run_under_the_profiles_time_limits(
    scaling_env: dict[str, str], tmp_path: Path
) -> None:
    """The local back end starts `conveyor worker --profile P`: P's limits apply."""
    from conveyor.scaling.backends.local import LocalBackend
    from conveyor.testing import wait_until

    config = tmp_path / "limits.toml"
    config.write_text("[profiles.processing]\nconcurrency = 1\ntime_limit = 90\n")
    env = {**scaling_env, "CONVEYOR_CONFIG": str(config)}
    app = Conveyor(
        Settings(redis_url=env["REDIS_URL"], home=Path(env["CONVEYOR_HOME"]), config_file=config)
    )
    assert app.topology.profile("processing").time_limit == 90
    backend = LocalBackend(app, env=env, grace_s=5)
    try:
        backend.scale("processing", 1)
        [worker] = backend.workers.values()
        wait_until(
            lambda: "time limits 45s soft / 90s hard" in worker.log_path.read_text(),
            timeout=30,
            what=f"the worker's ready line ({worker.log_path})",
        )
    finally:
        backend.close(5)
