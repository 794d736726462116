"""Choosing an encoder (NVENC on a GPU worker, the CPU otherwise) and its arguments.

A job that allows the GPU, on a worker with one (``ctx.device == "cuda"``, or
``CONVEYOR_MEDIA_GPU=force``), whose ffmpeg has the NVENC encoder, is encoded
there first, decoding with NVDEC; if that run fails (no NVENC on this GPU, no
free session, a driver too old) the same encode runs again on the CPU, and the
result names the device that did it and why the GPU was given up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.errors import MediaError
from conveyor.packs.media.inputs import VideoOptions
from conveyor.packs.media.runner import Completed

log = logging.getLogger("conveyor.media")

#: CPU encoders per codec, in order of preference.
CPU_ENCODERS = {
    "h264": ("libx264", "libopenh264"),
    "h265": ("libx265", "libkvazaar"),
    "vp9": ("libvpx-vp9",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"),
}
#: NVENC encoders per codec (VP9 has none).
GPU_ENCODERS = {"h264": "h264_nvenc", "h265": "hevc_nvenc", "av1": "av1_nvenc"}

_DEFAULT_QUALITY = {"libx264": 23, "libx265": 28, "libvpx-vp9": 33, "libsvtav1": 35}
_PRESETS = {
    "libx264": {"fast": "veryfast", "medium": "medium", "slow": "slow"},
    "libx265": {"fast": "veryfast", "medium": "medium", "slow": "slow"},
    "libsvtav1": {"fast": "10", "medium": "8", "slow": "5"},
    "nvenc": {"fast": "p2", "medium": "p4", "slow": "p6"},
}
_CPU_USED = {"fast": "6", "medium": "4", "slow": "2"}
_AUDIO = {
    "aac": ("aac", "128k"),
    "opus": ("libopus", "96k"),
    "mp3": ("libmp3lame", "192k"),
    "vorbis": ("libvorbis", "128k"),
    "flac": ("flac", None),
}


@dataclass(frozen=True)
class Encoder:
    """An encoder to try and the device it runs on."""

    name: str
    device: str

    @property
    def gpu(self) -> bool:
        """Whether it is an NVENC encoder."""
        return self.device == "cuda"


def plan(codec: str, available: frozenset[str], *, use_gpu: bool) -> list[Encoder]:
    """The encoders to try, GPU first when ``use_gpu``; :class:`MediaError` if none exists."""
    chosen = []
    nvenc = GPU_ENCODERS.get(codec)
    if use_gpu and nvenc in available:
        chosen.append(Encoder(nvenc, "cuda"))
    cpu = next((name for name in CPU_ENCODERS[codec] if name in available), None)
    if cpu is not None:
        chosen.append(Encoder(cpu, "cpu"))
    if not chosen:
        raise MediaError(
            f"this worker's ffmpeg has no {codec} encoder "
            f"(looked for {', '.join(CPU_ENCODERS[codec])})"
        )
    return chosen


def wants_gpu(allowed: bool, device: str, mode: str) -> bool:
    """Whether to try NVENC: the job allows it, and the worker has a GPU (or it is forced)."""
    if not allowed or mode == "off":
        return False
    return device == "cuda" or mode == "force"


def video_args(encoder: Encoder, options: VideoOptions) -> list[str]:
    """``-c:v`` and the rate control and speed arguments for ``encoder``."""
    name = encoder.name
    args = ["-c:v", name]
    quality = options.crf
    if encoder.gpu:
        args += ["-preset", _PRESETS["nvenc"][options.preset]]
        if options.bitrate:
            return [*args, "-b:v", options.bitrate]
        return [
            *args,
            "-rc",
            "vbr",
            "-cq",
            str(quality if quality is not None else 23),
            "-b:v",
            "0",
        ]
    if name in _PRESETS:
        args += ["-preset", _PRESETS[name][options.preset]]
    elif name in ("libvpx-vp9", "libaom-av1"):
        args += ["-cpu-used", _CPU_USED[options.preset], "-row-mt", "1"]
        if name == "libvpx-vp9":
            args += ["-deadline", "good"]
    if name == "libx265":
        args += ["-x265-params", "log-level=error"]
    if options.bitrate:
        return [*args, "-b:v", options.bitrate]
    if quality is None:
        quality = _DEFAULT_QUALITY.get(name, 32)
    if name in ("libvpx-vp9", "libaom-av1"):
        return [*args, "-crf", str(quality), "-b:v", "0"]
    if name in ("libopenh264", "librav1e", "libkvazaar"):
        return args  # these take no CRF: their own default rate control
    return [*args, "-crf", str(quality)]


def audio_args(codec: str, bitrate: str | None) -> list[str]:
    """``-c:a`` (and bit rate) for ``codec``; ``-an`` for ``none``."""
    if codec == "none":
        return ["-an"]
    if codec == "copy":
        return ["-c:a", "copy"]
    encoder, default_rate = _AUDIO[codec]
    rate = bitrate or default_rate
    return ["-c:a", encoder, *(["-b:a", rate] if rate else [])]


def container_args(container: str) -> list[str]:
    """Muxer arguments: mp4 gets its index at the front, so it plays while downloading."""
    return ["-movflags", "+faststart"] if container == "mp4" else []


def with_fallback(
    encoders: list[Encoder], attempt: Callable[[Encoder], Completed]
) -> tuple[Encoder, Completed, str | None]:
    """Run ``attempt`` with each encoder until one succeeds.

    Returns the encoder used, its run, and why the GPU was given up (None if it
    was not tried or did not fail). Only a GPU encoder's failure moves on.
    """
    gpu_error: str | None = None
    for encoder in encoders:
        try:
            return encoder, attempt(encoder), gpu_error
        except MediaError as exc:
            if not encoder.gpu:
                raise
            gpu_error = str(exc)
            log.warning("%s failed, encoding on the CPU instead: %s", encoder.name, exc)
    raise MediaError(gpu_error or "no encoder")
