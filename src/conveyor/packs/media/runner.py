"""Running ffmpeg for a job: live progress, cancellation, time limits, no partial output.

ffmpeg runs with ``-progress pipe:1``; its blocks become ``ctx.progress`` reports
(percent of the expected duration, fps and speed in the message). While it runs
the job checks every :data:`POLL_S` whether it was cancelled. Whatever ends the
run early — cancellation, the soft time limit (``SoftTimeLimitExceeded`` raised
in the job), an error — ffmpeg is asked to stop (SIGTERM), killed if it has not
within :data:`STOP_GRACE_S`, and the job's partial output is removed. Arguments
are always a list: no shell is ever involved.
"""

from __future__ import annotations

import collections
import ctypes
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Protocol

from conveyor.errors import JobCancelled, MediaError
from conveyor.packs.media.binary import COMMON, ffmpeg_path
from conveyor.packs.media.progress import ProgressParser, Snapshot

#: How often a running ffmpeg is checked for cancellation (seconds).
POLL_S = 0.25
#: How long ffmpeg gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 0.5
_STDERR_LINES = 400


class Context(Protocol):
    """What the runner needs of a :class:`~conveyor.JobContext`."""

    @property
    def job_id(self) -> str: ...

    @property
    def cancelled(self) -> bool: ...

    def progress(
        self, percent: float, stage: str | None = None, message: str | None = None
    ) -> None: ...


class Progress:
    """Maps one ffmpeg run's 0–100 % onto a span of the job's overall progress.

    A job with two passes gives each its half; a batch gives each render its share.
    """

    def __init__(self, ctx: Context, start: float = 0.0, span: float = 100.0) -> None:
        self.ctx = ctx
        self.start = start
        self.span = span

    def part(self, start: float, span: float) -> Progress:
        """The sub-span ``start``..``start+span`` (both 0–100) of this one."""
        return Progress(self.ctx, self.start + self.span * start / 100, self.span * span / 100)

    def report(self, percent: float, stage: str, message: str | None = None) -> None:
        """Report ``percent`` of this span (raises ``JobCancelled`` once cancelled)."""
        overall = self.start + self.span * max(0.0, min(100.0, percent)) / 100
        self.ctx.progress(round(min(100.0, overall), 2), stage=stage, message=message)

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if the job was cancelled."""
        if self.ctx.cancelled:
            raise JobCancelled(f"job {self.ctx.job_id} was cancelled")


@dataclass(frozen=True)
class Completed:
    """How an ffmpeg run ended (successfully)."""

    argv: list[str]
    elapsed_s: float
    last: Snapshot | None
    stderr: str


def _die_with_parent() -> None:
    # If the job's process is killed (hard time limit, cancel grace), ffmpeg goes too.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _pump(stream: IO[str], parser: ProgressParser, out: Queue[Snapshot | None]) -> None:
    try:
        for line in stream:
            snapshot = parser.feed(line)
            if snapshot is not None:
                out.put(snapshot)
    finally:
        out.put(None)


def _collect(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line.rstrip("\n"))


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (ffmpeg closes its outputs), then SIGKILL after :data:`STOP_GRACE_S`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_ffmpeg(
    progress: Progress,
    args: Sequence[str],
    *,
    duration_s: float | None,
    stage: str,
    loglevel: str = "error",
    binary: str | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run ffmpeg with ``args`` (inputs, filters, outputs) and report its progress.

    Raises :class:`MediaError` with ffmpeg's last stderr lines when it fails.
    """
    common = list(COMMON)
    common[common.index("-loglevel") + 1] = loglevel
    argv = [
        binary or ffmpeg_path(),
        *common,
        "-progress",
        "pipe:1",
        "-nostats",
        "-stats_period",
        "0.5",
        *args,
    ]
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        close_fds=True,
        cwd=cwd,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    assert process.stdout is not None and process.stderr is not None
    snapshots: Queue[Snapshot | None] = Queue()
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, ProgressParser(), snapshots)),
        threading.Thread(target=_collect, args=(process.stderr, tail)),
    ]
    for reader in readers:
        reader.daemon = True
        reader.start()
    last: Snapshot | None = None
    try:
        while True:
            try:
                snapshot = snapshots.get(timeout=POLL_S)
            except Empty:
                progress.check_cancelled()
                continue
            if snapshot is None:
                break
            last = snapshot
            percent = snapshot.percent(duration_s)
            if percent is None:
                progress.check_cancelled()
            else:
                progress.report(percent, stage, snapshot.describe())
        returncode = process.wait()
    except BaseException:
        stop(process)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
        process.stdout.close()
        process.stderr.close()
    stderr = "\n".join(tail)
    if returncode != 0:
        lines = [line for line in tail if line.strip()][-8:]
        raise MediaError(
            f"ffmpeg failed in stage {stage!r} (exit {returncode}): "
            + (" | ".join(lines) or "no error output")
        )
    return Completed(argv, time.monotonic() - started, last, stderr)


def partial_path(final: Path, job_id: str) -> Path:
    """Where an output is written until it is complete (same directory, hidden name)."""
    return final.with_name(f".{final.stem}.partial-{job_id[:8]}{final.suffix}")


@contextmanager
def staged_output(final: Path, job_id: str) -> Iterator[Path]:
    """Yield a partial path to write; on success move it to ``final``, else remove it.

    The rename is atomic, so readers never see a half-written output under its
    final name.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(final, job_id)
    # Never write through something planted at the partial name (a symlink out of the root).
    partial.unlink(missing_ok=True)
    try:
        yield partial
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
