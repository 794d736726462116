"""The upkeep pack: file clean-up, the resource monitor, default schedules."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings, keys
from conveyor.monitor.cleanup import check_roots, clean_files, parse_size
from conveyor.packs.upkeep import FilesInput, ResourcesInput
from conveyor.testing import wait_until

DAY = 86400.0


def make_file(path: Path, size: int, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A root with old and new files, and links pointing outside it."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    files = {
        "old": make_file(root / "renders" / "old.mp4", 100, 10 * DAY),
        "older": make_file(root / "older.wav", 100, 20 * DAY),
        "mid": make_file(root / "a" / "b" / "mid.bin", 300, 2 * DAY),
        "new": make_file(root / "a" / "new.bin", 200, 60),
        "victim": make_file(outside / "victim.bin", 500, 30 * DAY),
        "victim_dir_file": make_file(outside / "dir" / "inner.bin", 500, 30 * DAY),
    }
    os.symlink(files["victim"], root / "link-to-file")
    os.symlink(outside / "dir", root / "link-to-dir")
    old = time.time() - 30 * DAY
    for link in ("link-to-file", "link-to-dir"):
        os.utime(root / link, (old, old), follow_symlinks=False)
    return {"root": root, "outside": outside, **files}


def test_age_cleanup_removes_old_files_and_links_never_their_targets(
    tree: dict[str, Path],
) -> None:
    report = clean_files([tree["root"]], max_age_s=7 * DAY)
    assert not tree["old"].exists() and not tree["older"].exists()
    assert tree["mid"].exists() and tree["new"].exists()
    # The old links went; what they pointed at (a file, a directory's files) did not.
    assert not (tree["root"] / "link-to-file").is_symlink()
    assert not (tree["root"] / "link-to-dir").is_symlink()
    assert tree["victim"].exists() and tree["victim_dir_file"].exists()
    links = len(str(tree["victim"])) + len(str(tree["outside"] / "dir"))
    assert report.deleted_by_age == 4 and report.deleted_bytes == 200 + links
    assert report.removed_dirs == 1  # renders/ became empty
    assert report.errors == []


def test_size_cap_removes_oldest_first_and_dry_run_removes_nothing(
    tree: dict[str, Path],
) -> None:
    dry = clean_files([tree["root"]], max_total_bytes=500, dry_run=True)
    assert dry.dry_run and dry.deleted_files > 0
    assert tree["older"].exists() and tree["old"].exists()

    report = clean_files([tree["root"]], max_total_bytes=500)
    # Oldest first until the rest fits: the links, older.wav and old.mp4 go; 500 bytes stay.
    assert report.deleted_by_size == dry.deleted_files == 4
    assert report.kept_bytes == 500
    assert tree["mid"].exists() and tree["new"].exists()
    assert tree["victim"].exists() and tree["victim_dir_file"].exists()


def test_a_job_cannot_widen_the_configured_roots(tree: dict[str, Path]) -> None:
    configured = (tree["root"],)
    assert check_roots(configured, [str(tree["root"] / "a")]) == [(tree["root"] / "a").resolve()]
    for escape in (str(tree["outside"]), str(tree["root"] / ".." / "outside"), "/"):
        with pytest.raises(ValueError, match="outside the clean-up roots"):
            check_roots(configured, [escape])
    # A link inside the root to a directory outside it is outside too.
    with pytest.raises(ValueError):
        check_roots(configured, [str(tree["root"] / "link-to-dir")])
    assert parse_size("50GB") == 50 * 1024**3 and parse_size("500M") == 500 * 1024**2


def test_the_files_job_cleans_the_configured_roots(
    tree: dict[str, Path], settings: Settings, redis_client: redis.Redis
) -> None:
    app = Conveyor(settings.model_copy(update={"cleanup_roots": (tree["root"],)}))
    files = app.definition("upkeep.files")
    params = files.validate({"max_age": "7d", "max_total_size": "1K", "dry_run": True})
    assert isinstance(params, FilesInput) and params.max_total_size == 1024
    result = files.func(None, params)
    assert result["deleted_by_age"] == 4 and result["dry_run"] is True
    assert tree["old"].exists()
    assert app.schedules()["upkeep.files"].enabled is True


def test_upkeep_schedules_are_declared_by_default(app: Conveyor) -> None:
    found = app.schedules()
    assert {"upkeep.retention", "upkeep.dead_letters", "upkeep.resources", "upkeep.stalled"} <= {
        name for name, s in found.items() if s.enabled
    }
    # No roots configured: the file clean-up is declared but off.
    assert found["upkeep.files"].enabled is False


def test_resource_monitor_publishes_latest_history_and_pubsub(
    app: Conveyor, redis_client: redis.Redis
) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.RESOURCES_CHANNEL)
    job = app.definition("upkeep.resources")
    messages: list[dict[str, object]] = []

    def received() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            messages.append(json.loads(message["data"]))
        return bool(messages)

    for _ in range(3):
        sample = job.func(None, ResourcesInput())
    wait_until(received, timeout=10, what="a resource sample on the channel")
    pubsub.close()
    host = sample["hostname"]
    assert messages[0]["hostname"] == host
    for section in ("cpu", "memory", "disk", "gpu"):
        assert section in messages[0]
    assert 0 <= messages[0]["cpu"]["percent"] <= 100  # type: ignore[index]
    latest = json.loads(redis_client.hget(keys.RESOURCES_LATEST, host) or b"{}")
    assert latest["at"] == sample["at"]
    assert redis_client.llen(keys.resources_history(host)) == 3
