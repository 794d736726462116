"""The ffmpeg (and optional ffprobe) binaries media jobs run, and what they can encode.

``CONVEYOR_FFMPEG`` / ``CONVEYOR_FFPROBE`` name a system build; without them the
ffmpeg that ``imageio-ffmpeg`` ships is used (it has no ffprobe: probing then
goes through PyAV, see :mod:`conveyor.packs.media.probe`).
"""

from __future__ import annotations

import functools
import re
import subprocess

from conveyor.errors import ConfigurationError
from conveyor.settings import Settings

#: Arguments every ffmpeg run starts with: no banner, no stdin, no prompts, errors only.
COMMON = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
#: Protocols ffmpeg may open: local files and its own pipes, never the network.
PROTOCOLS = "file,pipe"


@functools.cache
def _settings() -> Settings:
    return Settings.load()


def ffmpeg_path(settings: Settings | None = None) -> str:
    """The ffmpeg to run: ``CONVEYOR_FFMPEG`` when set, else imageio-ffmpeg's."""
    configured = (settings or _settings()).ffmpeg_path
    if configured is not None:
        if not configured.is_file():
            raise ConfigurationError(f"CONVEYOR_FFMPEG: no such file {configured}")
        return str(configured)
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ffprobe_path(settings: Settings | None = None) -> str | None:
    """The configured ffprobe (``CONVEYOR_FFPROBE``), or None to probe with PyAV."""
    configured = (settings or _settings()).ffprobe_path
    if configured is None:
        return None
    if not configured.is_file():
        raise ConfigurationError(f"CONVEYOR_FFPROBE: no such file {configured}")
    return str(configured)


_ENCODER = re.compile(r"^\s*([VAS])[A-Z.]{5}\s+(\S+)", re.MULTILINE)


@functools.cache
def encoders(binary: str) -> frozenset[str]:
    """The encoder names ``binary`` was built with (``ffmpeg -encoders``)."""
    out = subprocess.run(
        [binary, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    ).stdout
    return frozenset(match.group(2) for match in _ENCODER.finditer(out))


@functools.cache
def version(binary: str) -> str:
    """The version ``ffmpeg -version`` names (``n9.0.2-…``, ``6.1.1``…), for ``conveyor doctor``."""
    out = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False)
    words = out.stdout.split()
    return words[2] if len(words) > 2 and words[1] == "version" else "unknown version"
