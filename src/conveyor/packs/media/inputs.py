"""The input models of the media jobs.

Every path and URL field is checked against the media policy when the model is
validated (see :mod:`conveyor.packs.media.confine`): at submit time in the API or
client, and again in the worker. Values are replaced by the real absolute path.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator
from pydantic import model_validator as model_check

from conveyor.packs.media.confine import InputPath, OutputDir, OutputPath, Source

Codec = Literal["h264", "h265", "vp9", "av1"]
Container = Literal["mp4", "webm", "mkv"]
AudioCodec = Literal["aac", "opus", "mp3", "flac", "vorbis", "copy", "none"]
AudioFormat = Literal["wav", "flac", "mp3", "aac", "opus"]
Bitrate = Annotated[str, StringConstraints(pattern=r"^\d{1,6}(\.\d{1,3})?[kKmM]?$")]
#: xfade transitions offered by ``media.render`` ("none" cuts).
Transition = Literal[
    "none", "fade", "dissolve", "fadeblack", "wipeleft", "wiperight", "slideleft", "slideright"
]

#: The file suffix of each audio format.
AUDIO_SUFFIX = {"wav": ".wav", "flac": ".flac", "mp3": ".mp3", "aac": ".m4a", "opus": ".opus"}


def check_suffix(value: str | None, allowed: set[str], field: str) -> str | None:
    """``value`` when its suffix is one of ``allowed``, else ``ValueError``."""
    if value is not None and PurePosixPath(value).suffix.lower() not in allowed:
        wanted = " or ".join(sorted(allowed))
        raise ValueError(f"{field} must end in {wanted}")
    return value


class VideoOptions(BaseModel):
    """How video is encoded: codec, container, size, frame rate, rate control, audio."""

    codec: Codec = "h264"
    container: Container = "mp4"
    width: int | None = Field(None, ge=16, le=8192, description="scale to this width")
    height: int | None = Field(None, ge=16, le=8192, description="scale to this height")
    fps: float | None = Field(None, gt=0, le=240)
    bitrate: Bitrate | None = Field(None, description="target video bit rate, e.g. 5M")
    crf: int | None = Field(None, ge=0, le=63, description="constant quality (lower: better)")
    preset: Literal["fast", "medium", "slow"] = "medium"
    audio_codec: AudioCodec | None = Field(
        None, description="default: aac in mp4/mkv, opus in webm"
    )
    audio_bitrate: Bitrate | None = None
    gpu: bool = Field(True, description="use NVENC/NVDEC when the worker has a GPU")

    @model_check(mode="after")
    def _consistent(self) -> Any:
        if self.bitrate is not None and self.crf is not None:
            raise ValueError("give bitrate or crf, not both")
        if self.crf is not None and self.codec in ("h264", "h265") and self.crf > 51:
            raise ValueError(f"crf for {self.codec} is 0–51")
        if self.container == "webm":
            if self.codec not in ("vp9", "av1"):
                raise ValueError("webm holds vp9 or av1 video")
            if self.audio_codec not in (None, "opus", "vorbis", "none", "copy"):
                raise ValueError("webm holds opus or vorbis audio")
        return self

    @property
    def audio_encoding(self) -> str:
        """The audio codec in effect."""
        if self.audio_codec is not None:
            return self.audio_codec
        return "opus" if self.container == "webm" else "aac"


class ProbeInput(BaseModel):
    """``media.probe``: the file (or URL) to look at."""

    source: Source


class TranscodeInput(VideoOptions):
    """``media.transcode``: one input to one output."""

    source: Source
    output: OutputPath | None = Field(
        None, description="default: <source>-<codec>-<job>.<container> in the first write root"
    )
    read_rate: float | None = Field(
        None, gt=0, le=100, description="read the input at this multiple of real time"
    )

    @field_validator("output")
    @classmethod
    def _suffix(cls, value: str | None, info: ValidationInfo) -> str | None:
        container = info.data.get("container", "mp4")
        return check_suffix(value, {f".{container}"}, "output")


class PreviewInput(BaseModel):
    """``media.preview``: ``count`` frames spread over the file, or one contact sheet."""

    source: Source
    output_dir: OutputDir
    count: int = Field(10, ge=1, le=100)
    sheet: bool = Field(False, description="one tiled image instead of separate frames")
    columns: int = Field(5, ge=1, le=20, description="contact sheet columns")
    width: int = Field(320, ge=16, le=3840, description="width of each frame")
    format: Literal["jpg", "png"] = "jpg"


class ExtractAudioInput(BaseModel):
    """``media.extract_audio``: the first audio stream to an audio file."""

    source: Source
    format: AudioFormat = "wav"
    output: OutputPath | None = None
    sample_rate: int | None = Field(None, ge=8000, le=192000)
    channels: int | None = Field(None, ge=1, le=8)
    bitrate: Bitrate | None = None

    @field_validator("output")
    @classmethod
    def _suffix(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_suffix(value, {AUDIO_SUFFIX[info.data.get("format", "wav")]}, "output")


class LoudnessInput(ExtractAudioInput):
    """``media.normalize_loudness``: EBU R128 two-pass loudness normalisation."""

    target_lufs: float = Field(-16.0, ge=-70, le=-5, description="integrated loudness")
    true_peak_db: float = Field(-1.5, ge=-9, le=0)
    lra: float = Field(11.0, ge=1, le=50, description="loudness range")


class WaveformInput(BaseModel):
    """``media.waveform``: a PNG picture of the audio."""

    source: Source
    output: OutputPath | None = None
    width: int = Field(1200, ge=64, le=8192)
    height: int = Field(240, ge=16, le=4096)
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#3b82f6"
    split_channels: bool = False

    @field_validator("output")
    @classmethod
    def _suffix(cls, value: str | None) -> str | None:
        return check_suffix(value, {".png"}, "output")


class Scene(BaseModel):
    """A piece of a source, from ``start_s`` to ``end_s`` (default: its end)."""

    source: Source
    start_s: float = Field(0.0, ge=0)
    end_s: float | None = Field(None, gt=0)

    @model_check(mode="after")
    def _ordered(self) -> Any:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError("end_s must be after start_s")
        return self


class RenderInput(VideoOptions):
    """``media.render``: scenes cut, scaled to one size, joined, subtitles burned in."""

    scenes: list[Scene] = Field(min_length=1, max_length=200)
    output: OutputPath | None = None
    width: int = Field(1280, ge=16, le=8192)
    height: int = Field(720, ge=16, le=8192)
    fps: float = Field(30.0, gt=0, le=240)
    transition: Transition = "none"
    transition_s: float = Field(0.5, gt=0, le=10)
    subtitles: InputPath | None = Field(None, description="an .srt, .ass or .vtt file")
    audio: bool = Field(True, description="keep the scenes' audio (silence where none)")

    @field_validator("output")
    @classmethod
    def _suffix(cls, value: str | None, info: ValidationInfo) -> str | None:
        container = info.data.get("container", "mp4")
        return check_suffix(value, {f".{container}"}, "output")

    @field_validator("subtitles")
    @classmethod
    def _subtitle_kind(cls, value: str | None) -> str | None:
        return check_suffix(value, {".srt", ".ass", ".ssa", ".vtt"}, "subtitles")


class RenderBatchInput(BaseModel):
    """``media.render_batch``: renders run one after another in one job."""

    renders: list[RenderInput] = Field(min_length=1, max_length=100)
    stop_on_error: bool = Field(False, description="stop at the first failed render")
