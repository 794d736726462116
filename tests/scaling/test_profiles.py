"""Profile entries the worker manager and ``conveyor worker`` read from ``conveyor.toml``."""

from __future__ import annotations

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
