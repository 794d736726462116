"""What media jobs return: typed results, stored as JSON with the job."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StreamInfo(BaseModel):
    """One stream of a media file."""

    index: int
    kind: str = Field(description="video, audio, subtitle, data…")
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bit_rate: int | None = None
    channels: int | None = None
    sample_rate: int | None = None
    duration_s: float | None = None


class ProbeResult(BaseModel):
    """``media.probe``: the container and its streams, with the first video/audio summarised."""

    path: str
    format: str
    duration_s: float | None
    size_bytes: int
    bit_rate: int | None = None
    streams: list[StreamInfo] = []
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_channels: int | None = None
    sample_rate: int | None = None

    @property
    def has_video(self) -> bool:
        """Whether a video stream is present."""
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        """Whether an audio stream is present."""
        return self.audio_codec is not None


class OutputInfo(BaseModel):
    """A file a job wrote, with how long writing it took."""

    output: str
    size_bytes: int
    duration_s: float | None = None
    elapsed_s: float


class EncodeResult(OutputInfo):
    """``media.transcode`` and ``media.render``: the encoded file and how it was encoded."""

    codec: str
    encoder: str
    device: str = Field(description="'cuda' when NVENC encoded it, else 'cpu'")
    container: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    gpu_error: str | None = Field(
        None, description="why the GPU encoder was not used, when it was tried and failed"
    )


class PreviewResult(BaseModel):
    """``media.preview``: frame images, or one contact sheet."""

    frames: list[str] = []
    sheet: str | None = None
    width: int
    elapsed_s: float


class AudioResult(OutputInfo):
    """``media.extract_audio``."""

    codec: str
    sample_rate: int | None = None
    channels: int | None = None


class Loudness(BaseModel):
    """EBU R128 measurements (ffmpeg's ``loudnorm``)."""

    integrated_lufs: float
    true_peak_db: float
    lra: float
    threshold: float


class LoudnessResult(OutputInfo):
    """``media.normalize_loudness``: the file, and its loudness before and after."""

    target_lufs: float
    before: Loudness
    after: Loudness | None = None


class WaveformResult(OutputInfo):
    """``media.waveform``: a PNG picture of the audio."""

    width: int
    height: int


class BatchItem(BaseModel):
    """One render of ``media.render_batch``: its result or why it failed."""

    index: int
    result: EncodeResult | None = None
    error: str | None = None


class RenderBatchResult(BaseModel):
    """``media.render_batch``: every render, in order."""

    items: list[BatchItem]
    succeeded: int
    failed: int
    elapsed_s: float
