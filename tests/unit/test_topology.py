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
