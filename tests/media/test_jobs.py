"""Every media job type end to end on one real worker (real ffmpeg, media made by lavfi):
results, live progress, cancellation, the soft time limit, the GPU fallback, and the
worker's own check of paths that never went through a submit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from conveyor import Conveyor, Settings, enqueue
from conveyor.submission import Submission
from conveyor.testing import WorkerProcess, wait_until
from tests.media.conftest import Media

pytestmark = pytest.mark.e2e


#: URL inputs from the tests' own HTTP server on loopback, and nowhere else.
URL_RULES = {
    "CONVEYOR_MEDIA_URL_SCHEMES": "http",
    "CONVEYOR_MEDIA_URL_HOSTS": "127.0.0.1",
    "CONVEYOR_MEDIA_ALLOW_PRIVATE_URLS": "true",
}


@pytest.fixture(scope="module")
def worker(
    broker_url: str, media: Media, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for the module. ``CONVEYOR_MEDIA_GPU=force`` makes it try NVENC on this
    GPU-less machine (and fall back); a long cancel grace proves ffmpeg stops by itself."""
    process = WorkerProcess(
        broker_url,
        profile="processing",
        queues=["processing"],
        app="tests.media.media_app:app",
        env={
            "CONVEYOR_MEDIA_ROOTS": media.roots,
            **URL_RULES,
            "CONVEYOR_MEDIA_GPU": "force",
            "CONVEYOR_CANCEL_GRACE_S": "60",
        },
        log_path=tmp_path_factory.mktemp("media-worker") / "worker.log",
    )
    with process:
        yield process


@pytest.fixture
def app(
    broker_url: str, media: Media, tmp_path: Path, redis_client: redis.Redis, worker: WorkerProcess
) -> Conveyor:
    settings = Settings(
        redis_url=broker_url,
        home=tmp_path / "home",
        media_roots=media.roots,
        media_url_schemes=("http",),
        media_url_hosts=("127.0.0.1",),
        media_allow_private_urls=True,
    )
    return Conveyor(settings, packs=["media"])


def run(app: Conveyor, job_type: str, payload: dict[str, Any], timeout: float = 120) -> Any:
    state = app.submit(job_type, payload).wait(timeout=timeout)
    assert state.status == "succeeded", state.error
    return state.result


def test_probe(app: Conveyor) -> None:
    info = run(app, "media.probe", {"source": "clip.mp4"})
    assert abs(info["duration_s"] - 2.0) < 0.1
    assert (info["video_codec"], info["audio_codec"], info["audio_channels"]) == ("h264", "aac", 1)
    assert (info["width"], info["height"], info["fps"]) == (64, 48, 10.0)
    assert [s["kind"] for s in info["streams"]] == ["video", "audio"]


def test_transcode_to_vp9_webm_scaled(app: Conveyor, media: Media) -> None:
    output = media.fresh_output(".webm")
    result = run(
        app,
        "media.transcode",
        {
            "source": "clip.mp4",
            "output": output,
            "codec": "vp9",
            "container": "webm",
            "width": 32,
            "fps": 5,
            "crf": 40,
            "audio_codec": "opus",
        },
    )
    assert result["output"] == str(media.write / output) and Path(result["output"]).is_file()
    assert (result["encoder"], result["device"], result["width"], result["fps"]) == (
        "libvpx-vp9",
        "cpu",
        32,
        5.0,
    )
    assert result["gpu_error"] is None  # VP9 has no NVENC encoder: nothing was tried


def test_gpu_encoder_failure_falls_back_to_the_cpu(app: Conveyor) -> None:
    result = run(app, "media.transcode", {"source": "clip.mp4", "codec": "h264", "bitrate": "200k"})
    assert (result["encoder"], result["device"]) == ("libx264", "cpu")
    assert "h264_nvenc" in result["gpu_error"]
    off = run(app, "media.transcode", {"source": "clip.mp4", "gpu": False})
    assert off["gpu_error"] is None and off["device"] == "cpu"


def test_preview_frames_and_contact_sheet(app: Conveyor, media: Media) -> None:
    folder = f"previews-{uuid.uuid4().hex[:6]}"
    frames = run(app, "media.preview", {"source": "clip.mp4", "output_dir": folder, "count": 3})
    assert len(frames["frames"]) == 3 and all(Path(f).is_file() for f in frames["frames"])
    sheet = run(
        app,
        "media.preview",
        {
            "source": "clip.mp4",
            "output_dir": folder,
            "count": 4,
            "sheet": True,
            "columns": 2,
            "width": 32,
            "format": "png",
        },
    )
    assert Path(sheet["sheet"]).read_bytes()[:4] == b"\x89PNG"


def test_audio_jobs(app: Conveyor) -> None:
    flac = run(
        app, "media.extract_audio", {"source": "clip.mp4", "format": "flac", "sample_rate": 22050}
    )
    assert (flac["codec"], flac["sample_rate"], flac["channels"]) == ("flac", 22050, 1)
    loud = run(app, "media.normalize_loudness", {"source": "clip.mp4", "target_lufs": -20})
    assert abs(loud["after"]["integrated_lufs"] - -20) < 1.0
    assert abs(loud["before"]["integrated_lufs"] - -20) > 1.0
    wave = run(app, "media.waveform", {"source": "clip.mp4", "width": 300, "height": 60})
    assert Path(wave["output"]).read_bytes()[:4] == b"\x89PNG"


def test_render_and_render_batch(app: Conveyor) -> None:
    scenes = [
        {"source": "clip.mp4", "start_s": 0.5, "end_s": 1.5},
        {"source": "silent.mp4"},
    ]
    common = {"width": 48, "height": 48, "fps": 10, "gpu": False}
    faded = run(
        app,
        "media.render",
        {
            "scenes": scenes,
            "transition": "fade",
            "transition_s": 0.4,
            "subtitles": "subs.srt",
            "container": "mkv",
            **common,
        },
    )
    assert abs(faded["duration_s"] - 1.6) < 0.2 and (faded["width"], faded["height"]) == (48, 48)
    batch = run(
        app,
        "media.render_batch",
        {
            "renders": [
                {"scenes": scenes, **common},
                {"scenes": [{"source": "clip.mp4", "start_s": 9}]},
            ]
        },
    )
    assert (batch["succeeded"], batch["failed"]) == (1, 1)
    assert "starts at or after the end" in batch["items"][1]["error"]


def _ffmpeg_of(worker: WorkerProcess) -> psutil.Process | None:
    children = psutil.Process(worker.pid).children(recursive=True)
    return next((p for p in children if p.name().startswith("ffmpeg")), None)


def _partials(media: Media) -> list[Path]:
    return list(media.write.glob(".*partial*"))


def test_progress_reaches_a_subscriber_and_cancel_stops_ffmpeg(
    app: Conveyor, worker: WorkerProcess, media: Media
) -> None:
    output = media.fresh_output(".mp4")
    job = app.submit(
        "media.transcode", {"source": "long.mp4", "output": output, "read_rate": 1, "gpu": False}
    )
    seen: list[dict[str, Any]] = []
    for event in job.events(timeout=60):
        if event.get("type") == "progress":
            seen.append(event)
            if len(seen) >= 3:
                break
    assert all(0 <= e["progress"] < 100 for e in seen)
    assert seen[-1]["progress"] > seen[0]["progress"]
    assert seen[-1]["stage"] == "encode libx264" and "x" in seen[-1]["message"]
    ffmpeg = wait_until(lambda: _ffmpeg_of(worker), timeout=10, what="ffmpeg running")
    started = time.monotonic()
    assert job.cancel()
    ffmpeg.wait(timeout=10)
    stopped_after = time.monotonic() - started
    print(f"ffmpeg stopped {stopped_after:.2f}s after the cancel")
    assert stopped_after < 2.0, f"ffmpeg ran {stopped_after:.2f}s after the cancel"
    wait_until(lambda: job.state().status == "cancelled", timeout=10)
    assert not (media.write / output).exists()
    wait_until(lambda: not _partials(media), timeout=5, what="partial output removed")


def test_soft_time_limit_stops_ffmpeg_and_removes_partial_output(
    app: Conveyor, worker: WorkerProcess, media: Media
) -> None:
    output = media.fresh_output(".mp4")
    job = app.submit(
        "media.transcode",
        {"source": "long.mp4", "output": output, "read_rate": 1, "gpu": False},
        soft_time_limit=2,
        time_limit=30,
    )
    state = wait_until(
        lambda: (s := job.state()).status in ("retrying", "failed") and s, timeout=30
    )
    assert state.error is not None and state.error.type == "SoftTimeLimitExceeded"
    assert state.progress > 0  # ffmpeg was running (and reporting) when the limit came
    assert _ffmpeg_of(worker) is None
    assert not (media.write / output).exists() and not _partials(media)
    job.cancel()


def test_the_worker_checks_paths_again(app: Conveyor) -> None:
    """A payload that never went through a submit (another producer) meets the same rules."""
    definition = app.definition("media.probe")
    job_id = str(uuid.uuid4())
    spec = Submission(
        id=job_id,
        type=definition.name,
        payload={"source": "escape.mp4"},
        queue="processing",
        priority=3,
        attempt=0,
        created_at=time.time(),
    )
    enqueue.submit(app, spec)
    state = app.get_job(job_id).wait(timeout=60)
    assert state.status == "failed" and state.error is not None
    assert state.error.type == "PayloadInvalid" and "source" in state.error.message


def test_url_input_is_fetched_and_a_redirect_elsewhere_refused(
    app: Conveyor, http_media: str
) -> None:
    info = run(app, "media.probe", {"source": f"{http_media}/clip.mp4"})
    assert info["path"] == f"{http_media}/clip.mp4" and info["video_codec"] == "h264"
    port = http_media.rsplit(":", 1)[1]
    sneaky = f"{http_media}/redirect?to=http://localhost:{port}/clip.mp4"
    state = app.submit("media.probe", {"source": sneaky}).wait(timeout=60)
    assert state.status == "failed" and state.error is not None
    assert state.error.type == "MediaError" and "'localhost' is not in" in state.error.message
