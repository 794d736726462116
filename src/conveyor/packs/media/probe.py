"""Probing media: duration, streams, codecs, size, frame rate, bit rate, channels.

With ``CONVEYOR_FFPROBE`` set, its JSON output is read; otherwise PyAV opens the
file (imageio-ffmpeg ships no ffprobe). Either way only local files are opened
(``protocol_whitelist=file``), and playlist-like formats that would make ffmpeg
open further files (HLS, DASH, concat, SDP) are refused: a file inside the media
roots must not pull in files from outside them.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from conveyor.errors import MediaError
from conveyor.packs.media.binary import PROTOCOLS, ffprobe_path
from conveyor.packs.media.results import ProbeResult, StreamInfo

#: Demuxers that read other files or the network on the input's say-so.
BLOCKED_FORMATS = frozenset(
    {"hls", "applehttp", "dash", "concat", "ffconcat", "sdp", "rtsp", "rtp", "tee", "lavfi"}
)


def probe(path: Path) -> ProbeResult:
    """Probe a local media file; :class:`MediaError` if it is not media or not allowed."""
    binary = ffprobe_path()
    result = _with_ffprobe(binary, path) if binary else _with_pyav(path)
    names = set(result.format.split(","))
    if names & BLOCKED_FORMATS:
        raise MediaError(f"{path.name}: {result.format} inputs are not accepted")
    return result


def written(output: Path, elapsed_s: float) -> tuple[ProbeResult, dict[str, Any]]:
    """Probe a finished output: its probe, and the common result fields
    (``output``, ``size_bytes``, ``duration_s``, ``elapsed_s``)."""
    info = probe(output)
    fields = {
        "output": str(output),
        "size_bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "elapsed_s": round(elapsed_s, 3),
    }
    return info, fields


def demuxer(result: ProbeResult) -> str:
    """The demuxer name to pin with ``-f``, so ffmpeg reads the input as it was probed."""
    return result.format.split(",")[0]


def input_args(path: Path, result: ProbeResult) -> list[str]:
    """``-i`` for a probed local input, with its demuxer pinned and local files only."""
    return ["-protocol_whitelist", PROTOCOLS, "-f", demuxer(result), "-i", str(path)]


def _summarise(
    path: Path, fmt: str, duration: float | None, bit_rate: int | None, streams: list[StreamInfo]
) -> ProbeResult:
    video = next((s for s in streams if s.kind == "video"), None)
    audio = next((s for s in streams if s.kind == "audio"), None)
    return ProbeResult(
        path=str(path),
        format=fmt,
        duration_s=duration,
        size_bytes=path.stat().st_size,
        bit_rate=bit_rate,
        streams=streams,
        width=video.width if video else None,
        height=video.height if video else None,
        fps=video.fps if video else None,
        video_codec=video.codec if video else None,
        audio_codec=audio.codec if audio else None,
        audio_channels=audio.channels if audio else None,
        sample_rate=audio.sample_rate if audio else None,
    )


def _with_pyav(path: Path) -> ProbeResult:
    import av

    try:
        container = av.open(str(path), options={"protocol_whitelist": "file"})
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path.name}: not a media file ({exc})") from None
    with container:
        streams = [_pyav_stream(stream) for stream in container.streams]
        duration = container.duration / 1_000_000 if container.duration else None
        return _summarise(
            path, container.format.name, duration, container.bit_rate or None, streams
        )


def _pyav_stream(stream: Any) -> StreamInfo:
    codec = stream.codec_context
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    info = StreamInfo(
        index=stream.index,
        kind=stream.type or "unknown",
        codec=getattr(codec, "name", None),
        bit_rate=getattr(codec, "bit_rate", None) or None,
        duration_s=duration,
    )
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate
        info.width, info.height = codec.width or None, codec.height or None
        info.fps = round(float(rate), 3) if rate else None
    elif stream.type == "audio":
        info.sample_rate = codec.sample_rate or None
        layout = getattr(codec, "layout", None)
        info.channels = getattr(layout, "nb_channels", None) or getattr(codec, "channels", None)
    return info


def _fraction(text: str | None) -> float | None:
    if not text or text in ("0/0", "N/A"):
        return None
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None
    return round(value, 3) or None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "N/A") else None
    except ValueError:
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "N/A") else None
    except ValueError:
        return None


def _with_ffprobe(binary: str, path: Path) -> ProbeResult:
    argv = [binary, "-v", "error", "-protocol_whitelist", "file", "-print_format", "json"]
    argv += ["-show_format", "-show_streams", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise MediaError(f"{path.name}: not a media file ({done.stderr.strip()[-300:]})")
    return from_ffprobe(path, json.loads(done.stdout or "{}"))


def from_ffprobe(path: Path, data: dict[str, Any]) -> ProbeResult:
    """A probe from ffprobe's ``-show_format -show_streams`` JSON."""
    fmt = data.get("format", {})
    streams = [
        StreamInfo(
            index=int(s.get("index", i)),
            kind=s.get("codec_type", "unknown"),
            codec=s.get("codec_name"),
            width=_int(s.get("width")),
            height=_int(s.get("height")),
            fps=_fraction(s.get("avg_frame_rate")) if s.get("codec_type") == "video" else None,
            bit_rate=_int(s.get("bit_rate")),
            channels=_int(s.get("channels")),
            sample_rate=_int(s.get("sample_rate")),
            duration_s=_float(s.get("duration")),
        )
        for i, s in enumerate(data.get("streams", []))
    ]
    return _summarise(
        path,
        fmt.get("format_name", "unknown"),
        _float(fmt.get("duration")),
        _int(fmt.get("bit_rate")),
        streams,
    )
