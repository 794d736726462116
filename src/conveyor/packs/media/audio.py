"""``media.extract_audio``, ``media.normalize_loudness`` (EBU R128, two passes) and
``media.waveform``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from conveyor.errors import MediaError
from conveyor.jobs import JobContext
from conveyor.packs.media.inputs import (
    AUDIO_SUFFIX,
    ExtractAudioInput,
    LoudnessInput,
    WaveformInput,
)
from conveyor.packs.media.probe import input_args, written
from conveyor.packs.media.results import (
    AudioResult,
    Loudness,
    LoudnessResult,
    WaveformResult,
)
from conveyor.packs.media.runner import Progress, run_ffmpeg, staged_output
from conveyor.packs.media.sources import default_output, open_source

#: The encoder of each audio format.
AUDIO_ENCODERS = {
    "wav": "pcm_s16le",
    "flac": "flac",
    "mp3": "libmp3lame",
    "aac": "aac",
    "opus": "libopus",
}


def _audio_out(params: ExtractAudioInput, sample_rate: int | None) -> list[str]:
    args = ["-map", "0:a:0", "-vn", "-c:a", AUDIO_ENCODERS[params.format]]
    if sample_rate:
        args += ["-ar", str(sample_rate)]
    if params.channels:
        args += ["-ac", str(params.channels)]
    if params.bitrate and params.format in ("mp3", "aac", "opus"):
        args += ["-b:a", params.bitrate]
    return args


def _output(params: ExtractAudioInput, tag: str, job_id: str) -> Path:
    if params.output:
        return Path(params.output)
    return default_output(params.source, tag, AUDIO_SUFFIX[params.format], job_id)


def extract_audio(ctx: JobContext, params: ExtractAudioInput) -> AudioResult:
    """The first audio stream, to wav, flac, mp3, aac or opus."""
    progress = Progress(ctx)
    path, info = open_source(ctx, params.source, progress.part(0, 20), need="audio")
    output = _output(params, "audio", ctx.job_id)
    with staged_output(output, ctx.job_id) as partial:
        run = run_ffmpeg(
            progress.part(20, 80),
            [*input_args(path, info), *_audio_out(params, params.sample_rate), str(partial)],
            duration_s=info.duration_s,
            stage="extract audio",
        )
    out, common = written(output, run.elapsed_s)
    return AudioResult(
        **common, codec=params.format, sample_rate=out.sample_rate, channels=out.audio_channels
    )


_JSON = re.compile(r"\{[^{}]*\}", re.DOTALL)


def parse_loudnorm(stderr: str) -> dict[str, float]:
    """The last JSON block ``loudnorm`` printed, as numbers (``-inf`` kept as such)."""
    blocks = _JSON.findall(stderr)
    if not blocks:
        raise MediaError("loudnorm printed no measurements")
    data = json.loads(blocks[-1])
    values = {}
    for key, value in data.items():
        try:
            values[key] = float(value)
        except (TypeError, ValueError):
            continue
    return values


def _loudness(values: dict[str, float], prefix: str) -> Loudness:
    return Loudness(
        integrated_lufs=values[f"{prefix}_i"],
        true_peak_db=values[f"{prefix}_tp"],
        lra=values[f"{prefix}_lra"],
        threshold=values[f"{prefix}_thresh"],
    )


def normalize_loudness(ctx: JobContext, params: LoudnessInput) -> LoudnessResult:
    """Measure (pass 1), then normalise linearly to the target (pass 2), per EBU R128."""
    progress = Progress(ctx)
    path, info = open_source(ctx, params.source, progress.part(0, 10), need="audio")
    target = f"I={params.target_lufs:g}:TP={params.true_peak_db:g}:LRA={params.lra:g}"
    measured = run_ffmpeg(
        progress.part(10, 45),
        [
            *input_args(path, info),
            "-map",
            "0:a:0",
            "-af",
            f"loudnorm={target}:print_format=json",
            "-f",
            "null",
            "-",
        ],
        duration_s=info.duration_s,
        stage="measure loudness",
        loglevel="info",
    )
    first = parse_loudnorm(measured.stderr)
    if not all(math.isfinite(first.get(f"input_{k}", math.nan)) for k in ("i", "tp", "lra")):
        raise MediaError("the audio is silent: its loudness cannot be measured")
    second_filter = (
        f"loudnorm={target}:measured_I={first['input_i']:g}:measured_TP={first['input_tp']:g}"
        f":measured_LRA={first['input_lra']:g}:measured_thresh={first['input_thresh']:g}"
        f":offset={first.get('target_offset', 0.0):g}:linear=true:print_format=json"
    )
    output = _output(params, "loudnorm", ctx.job_id)
    # loudnorm works at 192 kHz; give the output the source's rate unless one was asked for.
    rate = params.sample_rate or info.sample_rate or 48000
    with staged_output(output, ctx.job_id) as partial:
        normalized = run_ffmpeg(
            progress.part(55, 45),
            [
                *input_args(path, info),
                "-af",
                second_filter,
                *_audio_out(params, rate),
                str(partial),
            ],
            duration_s=info.duration_s,
            stage="normalize loudness",
            loglevel="info",
        )
    second = parse_loudnorm(normalized.stderr)
    after = _loudness(second, "output") if "output_i" in second else None
    _, common = written(output, measured.elapsed_s + normalized.elapsed_s)
    return LoudnessResult(
        **common,
        target_lufs=params.target_lufs,
        before=_loudness(first, "input"),
        after=after,
    )


def waveform(ctx: JobContext, params: WaveformInput) -> WaveformResult:
    """A PNG of the audio's waveform (one lane per channel with ``split_channels``)."""
    progress = Progress(ctx)
    path, info = open_source(ctx, params.source, progress.part(0, 20), need="audio")
    output = (
        Path(params.output)
        if params.output
        else default_output(params.source, "waveform", ".png", ctx.job_id)
    )
    picture = (
        f"[0:a:0]showwavespic=s={params.width}x{params.height}"
        f":colors=0x{params.color[1:]}:split_channels={int(params.split_channels)}[wave]"
    )
    with staged_output(output, ctx.job_id) as partial:
        run = run_ffmpeg(
            progress.part(20, 80),
            [
                *input_args(path, info),
                "-filter_complex",
                picture,
                "-map",
                "[wave]",
                "-frames:v",
                "1",
                "-update",
                "1",
                str(partial),
            ],
            duration_s=info.duration_s,
            stage="waveform",
        )
    return WaveformResult(
        output=str(output),
        size_bytes=output.stat().st_size,
        duration_s=info.duration_s,
        elapsed_s=round(run.elapsed_s, 3),
        width=params.width,
        height=params.height,
    )
