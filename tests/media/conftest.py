"""Media made by the tests themselves (lavfi ``testsrc`` and ``sine``: tiny, seconds long),
and media roots laid out around it."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.packs.media.binary import ffmpeg_path
from conveyor.packs.media.policy import MediaPolicy, parse_roots


def make_clip(path: Path, seconds: float, *, audio: bool = True, size: str = "64x48") -> Path:
    """A test-pattern video (with a sine tone unless ``audio`` is false), H.264/AAC."""
    argv = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
    argv.append(f"testsrc=size={size}:rate=10:duration={seconds:g}")
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds:g}", "-c:a", "aac"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(argv, check=True, timeout=120)
    return path


@dataclass(frozen=True)
class Media:
    """``read`` (ro) holds the inputs, ``write`` (rw) takes outputs; ``outside`` is neither."""

    read: Path
    write: Path
    outside: Path

    @property
    def roots(self) -> str:
        """The ``CONVEYOR_MEDIA_ROOTS`` value for this layout."""
        return f"{self.read}:ro,{self.write}:rw"

    @property
    def policy(self) -> MediaPolicy:
        """The media policy for this layout."""
        return MediaPolicy(roots=parse_roots(self.roots))

    def fresh_output(self, suffix: str) -> str:
        """A new output name (relative: it lands in the write root)."""
        return f"out-{uuid.uuid4().hex[:8]}{suffix}"


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """Roots with a 2 s clip, a silent clip, a long clip, subtitles, and escapes to refuse."""
    base = tmp_path_factory.mktemp("media")
    layout = Media(base / "in", base / "out", base / "outside")
    for path in (layout.read, layout.write, layout.outside):
        path.mkdir()
    make_clip(layout.read / "clip.mp4", 2)
    make_clip(layout.read / "silent.mp4", 1, audio=False)
    make_clip(layout.read / "long.mp4", 30, size="32x24")
    (layout.read / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:01,500\nHello\n")
    secret = layout.outside / "secret.mp4"
    make_clip(secret, 1, audio=False)
    (layout.read / "escape.mp4").symlink_to(secret)
    (layout.read / "escape_dir").symlink_to(layout.outside, target_is_directory=True)
    (layout.write / "escape_out").symlink_to(layout.outside, target_is_directory=True)
    return layout


class _Files(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; ``/redirect?to=URL`` answers 302 to ``URL``."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def http_media(media: Media) -> Iterator[str]:
    """``http://127.0.0.1:PORT``, serving the read root."""
    handler = functools.partial(_Files, directory=str(media.read))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
