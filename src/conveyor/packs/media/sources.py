"""Opening a job's source (fetching a URL first) and naming default outputs."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from conveyor.errors import MediaError
from conveyor.jobs import JobContext
from conveyor.packs.media import policy as policies
from conveyor.packs.media.confine import is_url
from conveyor.packs.media.fetch import fetch
from conveyor.packs.media.probe import probe
from conveyor.packs.media.results import ProbeResult
from conveyor.packs.media.runner import Progress

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def open_source(
    ctx: JobContext, source: str, progress: Progress, *, need: str | None = None
) -> tuple[Path, ProbeResult]:
    """The local path and probe of ``source``; a URL is downloaded first.

    ``need`` (``"video"`` or ``"audio"``) refuses a source without such a stream.
    """
    if is_url(source):
        directory = ctx.tempdir(prefix="fetch-").path
        path = fetch(source, directory, policies.current(), progress)
    else:
        path = Path(source)
    info = probe(path)
    if need == "video" and not info.has_video:
        raise MediaError(f"{_name(source)} has no video stream")
    if need == "audio" and not info.has_audio:
        raise MediaError(f"{_name(source)} has no audio stream")
    return path, info


def _name(source: str) -> str:
    return PurePosixPath(urlsplit(source).path if is_url(source) else source).name or "input"


def stem(source: str) -> str:
    """A file-name-safe stem of the source's name."""
    return _UNSAFE.sub("_", PurePosixPath(_name(source)).stem).strip("._") or "media"


def default_output(source: str, tag: str, suffix: str, job_id: str) -> Path:
    """``<first write root>/<source stem>-<tag>-<job id prefix><suffix>``."""
    roots = policies.current().write_roots
    if not roots:
        raise MediaError("no writable media root is configured (CONVEYOR_MEDIA_ROOTS …:rw)")
    return roots[0] / f"{stem(source)}-{tag}-{job_id[:8]}{suffix}"
