"""GPU facts of the running worker process: refusing GPU-only jobs, per-GPU workers, cleanup.

:func:`run_worker` records the GPUs the worker sees in :data:`WORKER_GPUS`
before Celery forks its pool, so every pool process knows them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from conveyor import keys
from conveyor.enqueue import hand_back
from conveyor.errors import ConfigurationError, NoGpuAvailable
from conveyor.submission import Submission

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.jobs import JobDefinition

log = logging.getLogger("conveyor.worker")

#: The GPUs this worker process sees; None outside a worker (nothing is refused).
WORKER_GPUS: list[str] | None = None
#: A refused GPU job comes back to its queue after this many seconds.
ROUTE_BACK_S = 5.0
_warned: set[str] = set()


def refuse_without_gpu(
    app: Conveyor, definition: JobDefinition, job_id: str, payload: Any, meta: dict[str, Any]
) -> bool:
    """Route a ``gpu="required"`` job back to its queue if this worker has no GPU.

    The job goes back through the delayed set (due in :data:`ROUTE_BACK_S`), so
    a CPU-only worker that keeps receiving it does not spin; a GPU worker on the
    same queue takes it. Returns True when the job was routed back.

    A job handed back for longer than ``CONVEYOR_GPU_WAIT_S`` is not routed back
    again: :class:`NoGpuAvailable` is raised for the worker to fail it.
    """
    if definition.gpu != "required" or WORKER_GPUS is None or WORKER_GPUS:
        return False
    now = time.time()
    queue = str(meta.get("queue") or app.queue_for(definition))
    waited = gpu_wait_so_far(app, job_id, queue, now)
    limit = app.settings.gpu_wait_s
    if waited >= limit:
        app.redis.zrem(keys.gpu_waiting(queue), job_id)
        raise NoGpuAvailable(
            f"no worker with a GPU took this job in {waited:.0f}s (CONVEYOR_GPU_WAIT_S="
            f"{limit:g}); start a worker on a GPU host for queue {queue!r} and replay it"
        )
    if definition.name not in _warned:
        _warned.add(definition.name)
        log.warning(
            "job type %s requires a GPU and this worker has none: routing its jobs back "
            "to their queue for a GPU worker",
            definition.name,
        )
    # The job's own limits, if it has any, go with it to the GPU worker.
    submission = Submission.of_delivery(
        job_id, definition.name, payload, meta, queue=queue, due_at=now + ROUTE_BACK_S, device=None
    )
    hand_back(app, submission)
    return True


def gpu_wait_so_far(app: Conveyor, job_id: str, queue: str, now: float) -> float:
    """Seconds since ``job_id`` was first handed back for want of a GPU (0 the first time).

    Also marks it as waiting for a GPU on ``queue`` (what ``conveyor queues`` shows).
    """
    pipe = app.redis.pipeline(transaction=False)
    # Kept well past the wait, so a job that waits its whole time still finds its start.
    pipe.set(keys.gpu_wait(job_id), repr(now), nx=True, ex=int(app.settings.gpu_wait_s) + 86400)
    pipe.get(keys.gpu_wait(job_id))
    pipe.zadd(keys.gpu_waiting(queue), {job_id: now})
    _, first, _ = pipe.execute()
    return max(0.0, now - float(first)) if first else 0.0


def waiting_for_gpu(app: Conveyor) -> dict[str, int]:
    """Queue → jobs handed back for want of a GPU within the last few hand-back rounds."""
    since = time.time() - 3 * ROUTE_BACK_S
    pipe = app.redis.pipeline(transaction=False)
    names = app.topology.queue_names()
    for queue in names:
        pipe.zremrangebyscore(keys.gpu_waiting(queue), "-inf", since)
        pipe.zcard(keys.gpu_waiting(queue))
    counts = pipe.execute()[1::2]
    return {queue: int(count) for queue, count in zip(names, counts, strict=True) if count}


def release_gpu_memory(**_: Any) -> None:
    """Give cached GPU memory back after a job, when torch is loaded and sees CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception as exc:  # a broken CUDA setup must not fail the job's bookkeeping
        log.debug("could not release GPU memory: %s", exc)


def visible_gpus(names: list[str], visible: str | None) -> list[str]:
    """The GPUs of ``names`` a process sees under ``CUDA_VISIBLE_DEVICES=visible``."""
    if visible is None:
        return names
    seen = []
    for part in visible.split(","):
        part = part.strip()
        if not part.isdigit():
            # "" or "-1" hides every GPU; UUIDs are taken at their word.
            if part and part != "-1":
                seen.append(part)
            continue
        if int(part) < len(names):
            seen.append(names[int(part)])
    return seen


def select_gpus(spec: str, names: list[str]) -> list[int]:
    """The GPU indices ``--gpus SPEC`` (``all`` or ``0,2``) names, checked against ``names``."""
    if not names:
        raise ConfigurationError(
            f"--gpus {spec}: no NVIDIA GPU found on this machine (neither NVML nor nvidia-smi "
            "sees one); drop --gpus to run the worker on the CPU"
        )
    if spec.strip() == "all":
        return list(range(len(names)))
    chosen = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if not part.isdigit() or int(part) >= len(names):
            raise ConfigurationError(
                f"--gpus {spec}: {part!r} is not a GPU index; this machine has "
                f"{len(names)} GPU(s): 0–{len(names) - 1} ({', '.join(names)})"
            )
        chosen.append(int(part))
    if not chosen:
        raise ConfigurationError("--gpus: give 'all' or a comma-separated list of GPU indices")
    return chosen


def run_per_gpu(worker_args: list[str], profile: str, indices: list[int]) -> int:
    """Run one ``conveyor worker`` per GPU (``CUDA_VISIBLE_DEVICES`` set) until they exit.

    Each is named ``PROFILE-gpuN@host``. SIGINT, SIGTERM and SIGQUIT are passed on
    to every child, so a warm (or cold) shutdown reaches them all. Returns the
    worst exit code.
    """
    host = socket.gethostname()
    children = []
    for index in indices:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(index))
        argv = [sys.executable, "-m", "conveyor", "worker", "--profile", profile]
        argv += [*worker_args, "--name", f"{profile}-gpu{index}@{host}"]
        children.append(subprocess.Popen(argv, env=env))
        log.info("started a %s worker on GPU %d (pid %d)", profile, index, children[-1].pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, forward)
    return max(child.wait() for child in children)
