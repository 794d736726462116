"""Media benchmark: ``media.transcode`` through Conveyor next to the same ffmpeg command
run by hand, on the same generated input.

    .venv/bin/python bench/media.py --seconds 20 --size 1280x720 --reps 3

The input is made with lavfi (``testsrc2`` and ``sine``). "By hand" runs the ffmpeg
command that the job runs (same binary, same encoder arguments) in this process;
"Conveyor" is submit → ``succeeded`` through a private embedded Valkey and one real
``conveyor worker`` (the built-in app with ``CONVEYOR_PACKS=diag,media``), which
adds the queue round trip, the input and output probes, the progress reports and
the cancellation checks. The overhead is the difference of the medians; on a loaded
machine, where both wander, the share of each job's time spent outside its ffmpeg run
(submit → succeeded minus the run's own ``elapsed_s``) is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from conveyor import Conveyor, Settings
from conveyor.packs.media.binary import ffmpeg_path
from conveyor.testing import WorkerProcess, embedded_broker

ENCODE = ["-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p"]
AUDIO = ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]


def make_input(path: Path, seconds: float, size: str) -> None:
    """A test-pattern video with a tone, H.264/AAC."""
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds:g}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds:g}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         str(path)],
        check=True,
    )  # fmt: skip


def by_hand(source: Path, output: Path) -> float:
    """Seconds for the plain ffmpeg command."""
    argv = [
        ffmpeg_path(),
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(source),
    ]
    argv += ["-map", "0:v:0", "-map", "0:a:0?", *ENCODE, *AUDIO, str(output)]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


def through_conveyor(app: Conveyor, output: Path) -> tuple[float, float]:
    """Seconds from submit to the job's ``succeeded``, and of those, ffmpeg's own run."""
    started = time.perf_counter()
    state = app.submit(
        "media.transcode",
        {"source": "input.mp4", "output": output.name, "codec": "h264", "crf": 23, "gpu": False},
    ).wait(timeout=3600)
    elapsed = time.perf_counter() - started
    assert state.status == "succeeded", state.error
    return elapsed, float(state.result["elapsed_s"])


def main() -> None:
    """Run both, alternating, and print the medians and the overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="input length")
    parser.add_argument("--size", default="1280x720", help="input frame size")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conveyor-media-bench-") as tmp:
        base = Path(tmp)
        (base / "in").mkdir()
        (base / "out").mkdir()
        source = base / "in" / "input.mp4"
        make_input(source, args.seconds, args.size)
        roots = f"{base / 'in'}:ro,{base / 'out'}:rw"
        with embedded_broker(base / "broker") as url:
            settings = Settings(redis_url=url, home=base / "home", media_roots=roots)
            app = Conveyor(settings, packs=["media"])
            env = {"CONVEYOR_PACKS": "diag,media", "CONVEYOR_MEDIA_ROOTS": roots}
            with WorkerProcess(url, queues=["processing"], env=env, log_path=base / "w.log"):
                through_conveyor(app, base / "out" / "warmup.mp4")
                hand, conveyor, added = [], [], []
                for rep in range(args.reps):
                    hand.append(by_hand(source, base / "out" / f"hand{rep}.mp4"))
                    total, ffmpeg = through_conveyor(app, base / "out" / f"conveyor{rep}.mp4")
                    conveyor.append(total)
                    added.append((total - ffmpeg) / ffmpeg)
    plain, ours = statistics.median(hand), statistics.median(conveyor)
    print(f"input: {args.seconds:g}s {args.size} testsrc2+sine, libx264 medium crf 23, aac 128k")
    print(f"by hand   : median {plain:.3f}s  ({', '.join(f'{t:.3f}' for t in hand)})")
    print(f"Conveyor  : median {ours:.3f}s  ({', '.join(f'{t:.3f}' for t in conveyor)})")
    print(
        f"difference: {ours - plain:+.3f}s = {100 * (ours - plain) / plain:+.1f} % (target ≤ 5 %)"
    )
    # On a busy machine the two medians wander by more than the overhead itself; the
    # time a job spends outside ffmpeg, against ffmpeg's own run in that job, does not.
    print(
        f"outside ffmpeg, per job: median {100 * statistics.median(added):.1f} % of the ffmpeg "
        f"run ({', '.join(f'{100 * a:.1f}' for a in added)})"
    )


if __name__ == "__main__":
    main()
