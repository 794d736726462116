"""URL inputs are downloaded by the worker one checked hop at a time: a redirect to a
host outside the rules is refused, and so is a name that resolves to loopback."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import MediaError
from conveyor.packs.media.fetch import fetch
from conveyor.packs.media.policy import MediaPolicy
from conveyor.packs.media.runner import Progress

BODY = b"\x00" * 50_000


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()


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


def test_an_allowed_url_is_downloaded_with_progress(server: int, tmp_path: Path) -> None:
    reports = Reports()
    path = fetch(f"http://127.0.0.1:{server}/clip.mp4", tmp_path, LOCAL, Progress(reports))
    assert path == tmp_path / "input.mp4" and path.read_bytes() == BODY
    assert reports.seen[-1] == 100.0


def test_a_redirect_to_another_host_is_refused(server: int, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{server}/redirect?to=http://localhost:{server}/clip.mp4"
    with pytest.raises(MediaError, match="'localhost' is not in CONVEYOR_MEDIA_URL_HOSTS"):
        fetch(url, tmp_path, LOCAL, Progress(Reports()))


def test_loopback_needs_the_private_allowance_even_by_name(server: int, tmp_path: Path) -> None:
    by_name = MediaPolicy(url_schemes=frozenset({"http"}), url_hosts=("*",))
    with pytest.raises(MediaError, match="loopback"):
        fetch(f"http://localhost:{server}/a.mp4", tmp_path, by_name, Progress(Reports()))


def test_downloads_over_the_size_limit_stop(server: int, tmp_path: Path) -> None:
    small = MediaPolicy(
        url_schemes=frozenset({"http"}),
        url_hosts=("127.0.0.1",),
        allow_private_urls=True,
        url_max_bytes=1000,
    )
    with pytest.raises(MediaError, match="CONVEYOR_MEDIA_URL_MAX_MB"):
        fetch(f"http://127.0.0.1:{server}/a.mp4", tmp_path, small, Progress(Reports()))
