"""One rule for a worker's pool size, whoever starts the worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Settings
from conveyor.errors import ConfigurationError
from conveyor.topology import Topology, default_topology, load_topology
from conveyor.worker.process import node_name
from conveyor.worker.sizing import pool_size, profile_env_name

TOML = """
[profiles.processing]
concurrency = 4

[profiles.generation]
autoscale = [1, 3]
"""


@pytest.fixture
def configured(tmp_path: Path) -> Topology:
    path = tmp_path / "conveyor.toml"
    path.write_text(TOML)
    return load_topology(path)


def test_profile_setting_beats_the_global_environment_default(configured: Topology) -> None:
    settings = Settings(worker_concurrency=2)
    size = pool_size(settings, configured.profile("processing"), environ={})
    assert (size.concurrency, size.source) == (4, "conveyor.toml")
    assert size.describe() == "4 (conveyor.toml)"


def test_profile_scoped_environment_beats_the_global_one() -> None:
    profile = default_topology().profile("processing")
    env = {profile_env_name("processing"): "3"}
    size = pool_size(Settings(worker_concurrency=2), profile, environ=env)
    assert (size.concurrency, size.source) == (3, "CONVEYOR_PROFILE_PROCESSING_CONCURRENCY")


def test_global_environment_beats_the_built_in_profile() -> None:
    profile = default_topology().profile("processing")
    size = pool_size(Settings(worker_concurrency=2), profile, environ={})
    assert (size.concurrency, size.source) == (2, "CELERY_WORKER_CONCURRENCY")


def test_the_command_line_beats_everything(configured: Topology) -> None:
    profile = configured.profile("processing")
    size = pool_size(Settings(worker_concurrency=2), profile, override=6, environ={})
    assert (size.concurrency, size.autoscale, size.source) == (6, None, "--concurrency")


def test_autoscale_runs_celerys_pool_autoscaler(configured: Topology) -> None:
    profile = configured.profile("generation")
    size = pool_size(Settings(worker_concurrency=2), profile, environ={})
    assert (size.concurrency, size.autoscale) == (3, (1, 3))
    assert size.describe() == "1–3 autoscale (conveyor.toml)"
    # The built-in generation profile autoscales 2-4 unless the environment fixes a size.
    builtin = default_topology().profile("generation")
    assert pool_size(Settings(), builtin, environ={}).autoscale == (2, 4)
    assert pool_size(Settings(worker_concurrency=2), builtin, environ={}).autoscale is None
    # Only the prefork pool can grow.
    assert pool_size(Settings(), builtin, pool="threads", environ={}).autoscale is None


def test_built_in_size_is_capped_at_the_cpu_count() -> None:
    profile = default_topology().profile("processing")
    assert pool_size(Settings(), profile, environ={}, cpus=2).concurrency == 2


def test_a_bad_profile_scoped_value_names_the_variable() -> None:
    profile = default_topology().profile("batch")
    with pytest.raises(ConfigurationError, match="CONVEYOR_PROFILE_BATCH_CONCURRENCY"):
        pool_size(Settings(), profile, environ={"CONVEYOR_PROFILE_BATCH_CONCURRENCY": "x"})


def test_profile_scoped_variables_are_known_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PROFILE_GENERATION_HIGH_CONCURRENCY", "2")
    Settings.load()  # not refused as an unknown CONVEYOR_ variable
    monkeypatch.setenv("CONVEYOR_PROFILE_TYPO", "2")
    with pytest.raises(ConfigurationError, match="CONVEYOR_PROFILE_TYPO"):
        Settings.load()


def test_node_names_expand_celerys_patterns() -> None:
    import socket

    host = socket.gethostname()
    assert node_name("worker1@%h", "processing") == f"worker1@{host}"
    assert node_name("w-%n@x", "processing") == f"w-{host.split('.')[0]}@x"
    assert node_name(None, "batch").startswith("batch-")
