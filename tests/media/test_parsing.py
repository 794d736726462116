"""ffmpeg's progress blocks, loudnorm's report, the roots setting, and encoder choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import ConfigurationError, MediaError
from conveyor.packs.media.audio import parse_loudnorm
from conveyor.packs.media.encode import Encoder, plan, video_args, wants_gpu, with_fallback
from conveyor.packs.media.inputs import VideoOptions
from conveyor.packs.media.policy import parse_roots
from conveyor.packs.media.probe import from_ffprobe
from conveyor.packs.media.progress import ProgressParser
from conveyor.packs.media.runner import Completed, Progress

BLOCK = """frame=25
fps=12.50
stream_0_0_q=28.0
bitrate=  12.3kbits/s
total_size=4096
out_time_us=1500000
out_time_ms=1500000
out_time=00:00:01.500000
dup_frames=0
drop_frames=0
speed=0.75x
progress=continue
"""


def test_a_block_becomes_one_snapshot_with_percent_of_duration() -> None:
    parser = ProgressParser()
    snapshots = [s for s in map(parser.feed, BLOCK.splitlines()) if s is not None]
    assert len(snapshots) == 1
    snap = snapshots[0]
    assert (snap.out_time_s, snap.frame, snap.fps, snap.speed) == (1.5, 25, 12.5, 0.75)
    assert snap.percent(3.0) == 50.0
    assert snap.percent(None) is None
    assert snap.describe() == "1.5s · 12.5 fps · 0.75x"


def test_na_values_before_the_first_frame_and_the_end_block() -> None:
    parser = ProgressParser()
    for line in ["out_time_us=N/A", "speed=N/A", "fps=0.00"]:
        assert parser.feed(line) is None
    first = parser.feed("progress=continue")
    assert first is not None and first.out_time_s == 0.0 and first.speed is None
    parser.feed("out_time_us=9000000")
    last = parser.feed("progress=end")
    assert last is not None and last.done and last.percent(3.0) == 100.0


def test_loudnorm_report_is_read_from_the_end_of_stderr() -> None:
    stderr = """[Parsed_loudnorm_0 @ 0x1] \n{\n\t"input_i" : "-21.80",\n\t"input_tp" : "-17.65",
\t"input_lra" : "0.00",\n\t"input_thresh" : "-31.80",\n\t"normalization_type" : "linear",
\t"target_offset" : "0.01"\n}\n"""
    values = parse_loudnorm("noise {not json}\n" + stderr)
    assert values["input_i"] == -21.8 and values["target_offset"] == 0.01
    assert "normalization_type" not in values
    with pytest.raises(MediaError):
        parse_loudnorm("no report here")


def test_roots_are_read_only_unless_marked_rw() -> None:
    roots = parse_roots("/srv/in, /srv/out:rw ,/srv/ref:ro")
    assert [(str(r.path), r.writable) for r in roots] == [
        ("/srv/in", False),
        ("/srv/out", True),
        ("/srv/ref", False),
    ]
    with pytest.raises(ConfigurationError, match="CONVEYOR_MEDIA_ROOTS"):
        parse_roots("relative/dir:rw")


ALL = frozenset({"libx264", "h264_nvenc", "libvpx-vp9", "libaom-av1", "av1_nvenc"})


def test_gpu_encoder_first_only_when_allowed_and_present() -> None:
    assert plan("h264", ALL, use_gpu=True) == [
        Encoder("h264_nvenc", "cuda"),
        Encoder("libx264", "cpu"),
    ]
    assert plan("h264", ALL, use_gpu=False) == [Encoder("libx264", "cpu")]
    assert plan("vp9", ALL, use_gpu=True) == [Encoder("libvpx-vp9", "cpu")]
    assert plan("av1", ALL, use_gpu=False) == [Encoder("libaom-av1", "cpu")]
    with pytest.raises(MediaError, match="no h265 encoder"):
        plan("h265", ALL, use_gpu=True)
    assert wants_gpu(True, "cuda", "auto") and not wants_gpu(True, "cpu", "auto")
    assert wants_gpu(True, "cpu", "force") and not wants_gpu(False, "cuda", "force")
    assert not wants_gpu(True, "cuda", "off")


def test_rate_control_arguments() -> None:
    crf = VideoOptions(crf=20)
    assert video_args(Encoder("libx264", "cpu"), crf)[-2:] == ["-crf", "20"]
    assert video_args(Encoder("libvpx-vp9", "cpu"), crf)[-4:] == ["-crf", "20", "-b:v", "0"]
    assert video_args(Encoder("h264_nvenc", "cuda"), crf)[-6:] == [
        "-rc",
        "vbr",
        "-cq",
        "20",
        "-b:v",
        "0",
    ]
    bitrate = VideoOptions(bitrate="2M")
    assert video_args(Encoder("libx265", "cpu"), bitrate)[-2:] == ["-b:v", "2M"]


def test_only_a_failed_gpu_encoder_falls_back() -> None:
    done = Completed([], 0.1, None, "")
    tried: list[str] = []

    def attempt(encoder: Encoder) -> Completed:
        tried.append(encoder.name)
        if encoder.gpu:
            raise MediaError("OpenEncodeSessionEx failed: unsupported device")
        return done

    encoders = [Encoder("h264_nvenc", "cuda"), Encoder("libx264", "cpu")]
    used, run, why = with_fallback(encoders, attempt)
    assert (used.name, run, tried) == ("libx264", done, ["h264_nvenc", "libx264"])
    assert why is not None and "unsupported device" in why

    def cpu_fails(encoder: Encoder) -> Completed:
        raise MediaError("bad input")

    with pytest.raises(MediaError, match="bad input"):
        with_fallback([Encoder("libx264", "cpu")], cpu_fails)


class Recorder:
    """Stands in for a running job's context: records what it is told."""

    job_id = "job"
    cancelled = False

    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None]] = []

    def progress(
        self, percent: float, stage: str | None = None, message: str | None = None
    ) -> None:
        self.reports.append((percent, stage))


def test_a_batch_moves_with_each_renders_ffmpeg_progress() -> None:
    """Two renders of 10 s and 30 s after a 5 % opening step: halfway through the
    second render's ffmpeg run the batch is at 5 + 95 × (10 + 15) / 40."""
    ctx = Recorder()
    work = Progress(ctx).part(5, 95)
    first, second = work.part(0, 25), work.part(25, 75)
    first.report(50, "encode")
    first.report(100, "encode")
    second.report(50, "encode")
    assert [p for p, _ in ctx.reports] == [16.88, 28.75, 64.38]


def test_ffprobe_json_is_read_like_a_pyav_probe(tmp_path: Path) -> None:
    media = tmp_path / "a.mkv"
    media.write_bytes(b"x" * 10)
    data = {
        "format": {"format_name": "matroska,webm", "duration": "3.5", "bit_rate": "800000"},
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "vp9", "width": 640,
             "height": 360, "avg_frame_rate": "30000/1001"},
            {"index": 1, "codec_type": "audio", "codec_name": "opus", "channels": 2,
             "sample_rate": "48000", "duration": "N/A"},
        ],
    }  # fmt: skip
    info = from_ffprobe(media, data)
    assert (info.format, info.duration_s, info.bit_rate, info.size_bytes) == (
        "matroska,webm", 3.5, 800000, 10,
    )  # fmt: skip
    assert (info.video_codec, info.width, info.fps) == ("vp9", 640, 29.97)
    assert (info.audio_codec, info.audio_channels, info.sample_rate) == ("opus", 2, 48000)
    assert info.streams[1].duration_s is None
