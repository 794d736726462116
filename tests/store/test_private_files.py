"""The SQLite job store and CONVEYOR_HOME hold every tenant's payloads: owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Settings
from conveyor.store import open_store


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022 umask, under which a plain create gives 0644 / 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_file_and_home_are_created_for_the_owner_only(
    tmp_path: Path, loose_umask: None
) -> None:
    home = tmp_path / "home"
    store = open_store(Settings(home=home))
    try:
        store.upgrade()
        files = [home / "jobs.db", home / "jobs.db-wal", home / "jobs.db-shm"]
        assert _mode(home) == 0o700
        for path in files:
            if path.exists():
                assert _mode(path) == 0o600, path
        assert (home / "jobs.db-wal").exists(), "WAL mode keeps a -wal file while open"
    finally:
        store.close()


def test_an_existing_home_keeps_its_mode(tmp_path: Path, loose_umask: None) -> None:
    home = tmp_path / "chosen"
    home.mkdir(mode=0o755)
    store = open_store(Settings(home=home))
    try:
        store.upgrade()
    finally:
        store.close()
    assert _mode(home) == 0o755
    assert _mode(home / "jobs.db") == 0o600


def test_a_home_created_by_a_workers_heartbeat_is_private(
    tmp_path: Path, loose_umask: None
) -> None:
    from conveyor.worker.heartbeats import touch

    home = tmp_path / "fresh" / "home"
    touch(home / "heartbeats" / "w1.beat")
    assert _mode(tmp_path / "fresh") == 0o700
    assert _mode(home) == 0o700 and _mode(home / "heartbeats") == 0o700
