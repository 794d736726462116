"""``media.probe``, ``media.transcode`` and ``media.preview``, and the encode step that
``media.render`` shares."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

from conveyor.jobs import JobContext
from conveyor.packs.media import policy as policies
from conveyor.packs.media.binary import encoders, ffmpeg_path
from conveyor.packs.media.confine import is_url
from conveyor.packs.media.encode import (
    Encoder,
    audio_args,
    container_args,
    plan,
    video_args,
    wants_gpu,
    with_fallback,
)
from conveyor.packs.media.inputs import PreviewInput, ProbeInput, TranscodeInput, VideoOptions
from conveyor.packs.media.probe import input_args, written
from conveyor.packs.media.results import EncodeResult, PreviewResult, ProbeResult
from conveyor.packs.media.runner import Completed, Progress, run_ffmpeg, staged_output
from conveyor.packs.media.sources import default_output, open_source, stem


def probe_media(ctx: JobContext, params: ProbeInput) -> ProbeResult:
    """Duration, streams, codecs, size, frame rate, bit rate and channels of a file."""
    progress = Progress(ctx)
    _, info = open_source(ctx, params.source, progress.part(0, 90))
    progress.report(100, "probe")
    return info.model_copy(update={"path": params.source})


def encode(
    ctx: JobContext,
    progress: Progress,
    options: VideoOptions,
    output: Path,
    *,
    build: Callable[[Encoder], list[str]],
    duration_s: float | None,
) -> EncodeResult:
    """Encode to ``output`` with the best encoder, falling back from NVENC to the CPU.

    ``build(encoder)`` gives everything before the encoder arguments: inputs,
    filters and ``-map`` options.
    """
    binary = ffmpeg_path()
    use_gpu = wants_gpu(options.gpu, ctx.device, policies.current().gpu)
    candidates = plan(options.codec, encoders(binary), use_gpu=use_gpu)

    def attempt(encoder: Encoder) -> Completed:
        with staged_output(output, ctx.job_id) as partial:
            args = build(encoder) + video_args(encoder, options) + ["-pix_fmt", "yuv420p"]
            args += audio_args(options.audio_encoding, options.audio_bitrate)
            args += [*container_args(options.container), str(partial)]
            return run_ffmpeg(
                progress, args, duration_s=duration_s, stage=f"encode {encoder.name}", binary=binary
            )

    encoder, run, gpu_error = with_fallback(candidates, attempt)
    out, common = written(output, run.elapsed_s)
    return EncodeResult(
        **common,
        codec=options.codec,
        encoder=encoder.name,
        device=encoder.device,
        container=options.container,
        width=out.width,
        height=out.height,
        fps=out.fps,
        gpu_error=gpu_error,
    )


def transcode(ctx: JobContext, params: TranscodeInput) -> EncodeResult:
    """One input to one output: codec, container, size, frame rate, rate control, audio."""
    progress = Progress(ctx)
    fetching = is_url(params.source)
    path, info = open_source(ctx, params.source, progress.part(0, 20), need="video")
    output = (
        Path(params.output)
        if params.output
        else default_output(params.source, params.codec, f".{params.container}", ctx.job_id)
    )
    filters = []
    if params.width or params.height:
        filters.append(f"scale={params.width or -2}:{params.height or -2}")
    if params.fps:
        filters.append(f"fps={params.fps:g}")

    def build(encoder: Encoder) -> list[str]:
        args = ["-hwaccel", "cuda"] if encoder.gpu else []
        if params.read_rate:
            args += ["-readrate", f"{params.read_rate:g}"]
        args += [*input_args(path, info), "-map", "0:v:0", "-map", "0:a:0?"]
        return args + (["-vf", ",".join(filters)] if filters else [])

    return encode(
        ctx,
        progress.part(20, 80) if fetching else progress,
        params,
        output,
        build=build,
        duration_s=info.duration_s,
    )


def preview(ctx: JobContext, params: PreviewInput) -> PreviewResult:
    """``count`` frames spread evenly over the file, or one contact sheet of them."""
    progress = Progress(ctx)
    path, info = open_source(ctx, params.source, progress.part(0, 20), need="video")
    duration = info.duration_s or 1.0
    picked = f"fps={params.count}/{duration:.6f},scale={params.width}:-2"
    quality = ["-q:v", "3"] if params.format == "jpg" else []
    out_dir = Path(params.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = stem(params.source)
    work = progress.part(20, 80)
    if params.sheet:
        rows = math.ceil(params.count / params.columns)
        sheet = out_dir / f"{name}-sheet.{params.format}"
        with staged_output(sheet, ctx.job_id) as partial:
            run = run_ffmpeg(
                work,
                [
                    *input_args(path, info),
                    "-vf",
                    f"{picked},tile={params.columns}x{rows}",
                    "-frames:v",
                    "1",
                    "-update",
                    "1",
                    *quality,
                    str(partial),
                ],
                duration_s=info.duration_s,
                stage="contact sheet",
            )
        return PreviewResult(sheet=str(sheet), width=params.width, elapsed_s=run.elapsed_s)
    with ctx.tempdir(prefix="frames-") as scratch:
        pattern = scratch / f"frame-%03d.{params.format}"
        run = run_ffmpeg(
            work,
            [
                *input_args(path, info),
                "-vf",
                picked,
                "-frames:v",
                str(params.count),
                *quality,
                str(pattern),
            ],
            duration_s=info.duration_s,
            stage="frames",
        )
        frames = []
        for index, made in enumerate(sorted(scratch.iterdir()), start=1):
            target = out_dir / f"{name}-frame-{index:03d}.{params.format}"
            shutil.move(made, target)
            frames.append(str(target))
    return PreviewResult(frames=frames, width=params.width, elapsed_s=run.elapsed_s)
