"""``media.render`` (scenes → one video) and ``media.render_batch`` (many renders, one job).

A render cuts each scene from its source (``-ss``/``-t`` on the input), scales
and pads it to the output size and frame rate, joins the scenes — cut, or with
an ``xfade``/``acrossfade`` transition — burns in subtitles, and encodes like
``media.transcode`` (NVENC first on a GPU worker). Scenes without audio get
silence, so the joined audio always lines up with the picture.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import MediaError
from conveyor.jobs import JobContext
from conveyor.packs.media.encode import Encoder
from conveyor.packs.media.inputs import RenderBatchInput, RenderInput
from conveyor.packs.media.probe import input_args
from conveyor.packs.media.results import (
    BatchItem,
    EncodeResult,
    ProbeResult,
    RenderBatchResult,
)
from conveyor.packs.media.runner import Progress
from conveyor.packs.media.sources import default_output, open_source
from conveyor.packs.media.video import encode

_PLAIN_PATH = re.compile(r"^[A-Za-z0-9/_.-]+$")


@dataclass(frozen=True)
class Cut:
    """One scene, opened and measured."""

    path: Path
    info: ProbeResult
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class RenderPlan:
    """Everything a render needs once its sources are open."""

    params: RenderInput
    cuts: list[Cut]
    output: Path
    duration_s: float


def plan_render(
    ctx: JobContext, params: RenderInput, progress: Progress, tag: str = "render"
) -> RenderPlan:
    """Open and measure every scene; :class:`MediaError` for a scene that is empty."""
    cuts = []
    for index, scene in enumerate(params.scenes):
        share = progress.part(100 * index / len(params.scenes), 100 / len(params.scenes))
        path, info = open_source(ctx, scene.source, share, need="video")
        length = info.duration_s or 0.0
        end = min(scene.end_s, length) if scene.end_s is not None and length else scene.end_s
        end = end if end is not None else length
        duration = end - scene.start_s
        if duration <= 0:
            raise MediaError(f"scene {index} starts at or after the end of its source")
        if params.transition != "none" and duration <= params.transition_s:
            raise MediaError(f"scene {index} is shorter than the transition")
        cuts.append(Cut(path, info, scene.start_s, duration))
    overlap = params.transition_s * (len(cuts) - 1) if params.transition != "none" else 0.0
    output = (
        Path(params.output)
        if params.output
        else default_output(params.scenes[0].source, tag, f".{params.container}", ctx.job_id)
    )
    return RenderPlan(params, cuts, output, sum(c.duration_s for c in cuts) - overlap)


def filter_graph(plan: RenderPlan, subtitles: Path | None) -> tuple[str, str, str | None]:
    """The ``-filter_complex`` graph and its video and audio output labels."""
    p = plan.params
    size = f"{p.width}:{p.height}"
    parts = []
    for i, cut in enumerate(plan.cuts):
        parts.append(
            f"[{i}:v:0]setpts=PTS-STARTPTS,scale={size}:force_original_aspect_ratio=decrease,"
            f"pad={size}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={p.fps:g},format=yuv420p,"
            f"settb=AVTB[v{i}]"
        )
        if p.audio:
            if cut.info.has_audio:
                source = f"[{i}:a:0]asetpts=PTS-STARTPTS,"
            else:
                source = "anullsrc=r=48000:cl=stereo,"
            parts.append(
                f"{source}aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"apad,atrim=0:{cut.duration_s:.6f}[a{i}]"
            )
    video, audio = "v0", "a0" if p.audio else None
    if len(plan.cuts) > 1 and p.transition == "none":
        labels = "".join(f"[v{i}]" + (f"[a{i}]" if p.audio else "") for i in range(len(plan.cuts)))
        streams = f"v=1:a={int(p.audio)}"
        parts.append(
            f"{labels}concat=n={len(plan.cuts)}:{streams}[vj]" + ("[aj]" if p.audio else "")
        )
        video, audio = "vj", "aj" if p.audio else None
    elif len(plan.cuts) > 1:
        offset = 0.0
        for i in range(1, len(plan.cuts)):
            offset += plan.cuts[i - 1].duration_s - p.transition_s
            parts.append(
                f"[{video}][v{i}]xfade=transition={p.transition}:duration={p.transition_s:g}"
                f":offset={offset:.6f}[x{i}]"
            )
            video = f"x{i}"
            if p.audio:
                parts.append(f"[{audio}][a{i}]acrossfade=d={p.transition_s:g}[y{i}]")
                audio = f"y{i}"
    if subtitles is not None:
        parts.append(f"[{video}]subtitles={subtitles}[vs]")
        video = "vs"
    return ";".join(parts), video, audio


def _subtitles_copy(ctx: JobContext, source: str | None) -> Path | None:
    """The subtitles copied to a plain path (nothing in it needs filter-graph escaping)."""
    if source is None:
        return None
    directory = ctx.tempdir(prefix="subs-").path
    copy = directory / f"subtitles{Path(source).suffix.lower()}"
    shutil.copyfile(source, copy)
    if not _PLAIN_PATH.match(str(copy)):
        raise MediaError("the temporary directory's path needs escaping; set TMPDIR plainly")
    return copy


def run_render(ctx: JobContext, plan: RenderPlan, progress: Progress) -> EncodeResult:
    """Encode a planned render."""
    graph, video, audio = filter_graph(plan, _subtitles_copy(ctx, plan.params.subtitles))

    def build(encoder: Encoder) -> list[str]:
        args: list[str] = []
        for cut in plan.cuts:
            if encoder.gpu:
                args += ["-hwaccel", "cuda"]
            args += ["-ss", f"{cut.start_s:.6f}", "-t", f"{cut.duration_s:.6f}"]
            args += input_args(cut.path, cut.info)
        args += ["-filter_complex", graph, "-map", f"[{video}]"]
        return args + (["-map", f"[{audio}]"] if audio else [])

    options = plan.params
    if not options.audio:
        options = options.model_copy(update={"audio_codec": "none"})
    return encode(ctx, progress, options, plan.output, build=build, duration_s=plan.duration_s)


def render(ctx: JobContext, params: RenderInput) -> EncodeResult:
    """Scenes with in/out points, joined (with transitions), subtitles burned in."""
    progress = Progress(ctx)
    plan = plan_render(ctx, params, progress.part(0, 5))
    return run_render(ctx, plan, progress.part(5, 95))


def render_batch(ctx: JobContext, params: RenderBatchInput) -> RenderBatchResult:
    """Each render in turn; the job's progress is the sum of the renders' ffmpeg progress,
    each weighted by its length, so it moves while a render runs, not only between them."""
    started = time.monotonic()
    progress = Progress(ctx)
    items: list[BatchItem] = []
    plans: list[RenderPlan | None] = []
    opening = progress.part(0, 5)
    for index, render_input in enumerate(params.renders):
        share = opening.part(100 * index / len(params.renders), 100 / len(params.renders))
        try:
            plans.append(plan_render(ctx, render_input, share, tag=f"render{index}"))
        except MediaError as exc:
            plans.append(None)
            items.append(BatchItem(index=index, error=str(exc)))
            if params.stop_on_error:
                break
    total = sum(p.duration_s for p in plans if p is not None) or 1.0
    done = 0.0
    work = progress.part(5, 95)
    for index, plan in enumerate(plans):
        if plan is None:
            continue
        if params.stop_on_error and any(item.error for item in items):
            break
        share = work.part(100 * done / total, 100 * plan.duration_s / total)
        try:
            items.append(BatchItem(index=index, result=run_render(ctx, plan, share)))
        except MediaError as exc:
            items.append(BatchItem(index=index, error=str(exc)))
        done += plan.duration_s
    items.sort(key=lambda item: item.index)
    failed = sum(1 for item in items if item.error)
    return RenderBatchResult(
        items=items,
        succeeded=len(items) - failed,
        failed=failed,
        elapsed_s=round(time.monotonic() - started, 3),
    )
