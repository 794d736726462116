"""URL inputs are downloaded by the worker one checked hop at a time: a redirect to a
host outside the rules is refused, and so is a name that resolves to loopback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from conveyor.errors import MediaError
from conveyor.packs.media.fetch import fetch
from conveyor.packs.media.policy import MediaPolicy
from conveyor.packs.media.runner import Progress
from tests.media.conftest import Media


class Reports:
    """Stands in for a running job's context: records progress, never cancelled."""

    job_id = str(uuid.uuid4())
    cancelled = False

    def __init__(self) -> None:
        self.seen: list[float] = []

    def progress(
        self, percent: float, stage: str | None = None, message: str | None = None
    ) -> None:
        self.seen.append(percent)


LOCAL = MediaPolicy(
    url_schemes=frozenset({"http"}), url_hosts=("127.0.0.1",), allow_private_urls=True
)


def test_an_allowed_url_is_downloaded_with_progress(
    http_media: str, media: Media, tmp_path: Path
) -> None:
    reports = Reports()
    path = fetch(f"{http_media}/clip.mp4", tmp_path, LOCAL, Progress(reports))
    assert path == tmp_path / "input.mp4"
    assert path.read_bytes() == (media.read / "clip.mp4").read_bytes()
    assert reports.seen[-1] == 100.0


def test_a_redirect_to_another_host_is_refused(http_media: str, tmp_path: Path) -> None:
    port = http_media.rsplit(":", 1)[1]
    url = f"{http_media}/redirect?to=http://localhost:{port}/clip.mp4"
    with pytest.raises(MediaError, match="'localhost' is not in CONVEYOR_MEDIA_URL_HOSTS"):
        fetch(url, tmp_path, LOCAL, Progress(Reports()))


def test_loopback_needs_the_private_allowance_even_by_name(http_media: str, tmp_path: Path) -> None:
    by_name = MediaPolicy(url_schemes=frozenset({"http"}), url_hosts=("*",))
    port = http_media.rsplit(":", 1)[1]
    with pytest.raises(MediaError, match="loopback"):
        fetch(f"http://localhost:{port}/clip.mp4", tmp_path, by_name, Progress(Reports()))


def test_downloads_over_the_size_limit_stop(http_media: str, tmp_path: Path) -> None:
    small = MediaPolicy(
        url_schemes=frozenset({"http"}),
        url_hosts=("127.0.0.1",),
        allow_private_urls=True,
        url_max_bytes=1000,
    )
    with pytest.raises(MediaError, match="CONVEYOR_MEDIA_URL_MAX_MB"):
        fetch(f"{http_media}/clip.mp4", tmp_path, small, Progress(Reports()))
