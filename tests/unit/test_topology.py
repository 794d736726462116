from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import ConfigurationError
from conveyor.topology import default_topology, load_topology


def test_default_table_matches_the_design() -> None:
    topology = default_topology()
    assert {q.name: q.priority for q in topology.queues.values()} == {
        "critical": 10,
        "generation-high": 7,
        "generation": 5,
        "processing": 3,
        "batch": 1,
        "monitoring": 0,
        "dead-letter": -1,
    }
    assert topology.queue_names()[0] == "critical"
    assert topology.profile("generation").queues == ("generation-high", "generation")
    assert topology.profile("monitoring").pool == "threads"


def test_toml_overrides_and_adds(tmp_path: Path) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text(
        "[queues.thumbnails]\npriority = 4\n\n"
        '[profiles.processing]\nqueues = ["processing", "thumbnails"]\nconcurrency = 6\n'
    )
    topology = load_topology(config)
    assert topology.queue("thumbnails").priority == 4
    assert topology.profile("processing").queues == ("processing", "thumbnails")
    assert topology.profile("processing").concurrency == 6
    assert topology.queue_names().index("thumbnails") < topology.queue_names().index("processing")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[profiles.x]\nqueues = ["nope"]\n', "unknown queue 'nope'"),
        ("[queues.a]\nprio = 1\n", "unknown key"),
        ('[queues."bad:name"]\npriority = 1\n', "invalid name"),
        ('[profiles.processing]\npool = "gevent"\n', "pool: must be one of"),
        ("[queues.a\n", "not valid TOML"),
        (
            "[profiles.batch]\ntime_limit = 60\nsoft_time_limit = 60\n",
            r"profiles\.batch: soft_time_limit \(60s\) must be below time_limit \(60s\)",
        ),
        ("[profiles.batch]\ntime_limit = 0\n", r"profiles\.batch\.time_limit: must be a number"),
        ("[profiles.batch]\nsoft_time_limit = -1\n", r"profiles\.batch\.soft_time_limit: must"),
        ('[profiles.batch]\ntime_limit = "60"\n', r"profiles\.batch\.time_limit: must"),
        ("[profiles.batch]\ntime_limit = true\n", r"profiles\.batch\.time_limit: must"),
        ("[profiles.batch]\ntime_limit = inf\n", r"profiles\.batch\.time_limit: must"),
    ],
)
def test_bad_toml_is_refused_with_the_place(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_topology(config)


def test_unknown_queue_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="known queues: critical, generation-high"):
        default_topology().queue("nope")


def test_profile_time_limits_from_toml(tmp_path: Path) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text(
        "[profiles.batch]\ntime_limit = 7200\nsoft_time_limit = 7000.5\n\n"
        "[profiles.critical]\ntime_limit = 30\n"
    )
    topology = load_topology(config)
    batch = topology.profile("batch")
    assert (batch.time_limit, batch.soft_time_limit) == (7200.0, 7000.5)
    assert batch.queues == ("batch",) and batch.concurrency == 2  # the rest unchanged
    assert topology.profile("critical").time_limit == 30
    assert topology.profile("critical").soft_time_limit is None
    # The default table sets none: the settings' apply.
    assert all(p.time_limit is None for p in default_topology().profiles.values())


def test_an_application_can_declare_its_own_topology(tmp_path: Path) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text(
        "replace_defaults = true\n"
        "[queues.reports]\npriority = 5\n[queues.default]\npriority = 1\n"
        "[profiles.reports]\nqueues = ['reports', 'default']\nconcurrency = 4\n"
    )
    topology = load_topology(config)
    assert topology.queue_names() == ["reports", "default", "dead-letter"]
    assert set(topology.profiles) == {"reports", "monitoring"}
    # Dead letters keep a worker; the first declared queue is the default.
    assert topology.profile("monitoring").queues == ("dead-letter",)
    assert topology.default_queue == "reports"
    with pytest.raises(ConfigurationError, match="unknown queue 'processing'"):
        topology.queue("processing")


def test_replace_defaults_needs_a_queue_and_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "conveyor.toml"
    config.write_text("replace_defaults = true\n")
    with pytest.raises(ConfigurationError, match="at least one"):
        load_topology(config)
    config.write_text("replace_defaults = 'yes'\n[queues.a]\npriority = 1\n")
    with pytest.raises(ConfigurationError, match="true or false"):
        load_topology(config)
