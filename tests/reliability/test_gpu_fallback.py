"""A ``gpu="prefer"`` job that runs out of GPU memory is retried on CPU, and the device
each delivery ran on is recorded in the job's state."""

from __future__ import annotations

from pathlib import Path

import redis

from conveyor import Conveyor, Settings, delayed
from conveyor.worker.executor import Execution, is_gpu_oom
from tests.reliability.apps import CudaOutOfMemoryLike, batch_worker, register


def test_gpu_oom_is_told_by_name_and_message() -> None:
    assert is_gpu_oom(CudaOutOfMemoryLike("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_gpu_oom(RuntimeError("CUDA error: out of memory"))
    assert not is_gpu_oom(MemoryError("out of memory"))
    assert not is_gpu_oom(ValueError("bad input"))


def test_gpu_out_of_memory_retries_on_cpu(
    settings: Settings, redis_client: redis.Redis, broker_url: str, tmp_path: Path
) -> None:
    app = Conveyor(settings)
    register(app)
    # The job's first delivery, as a GPU worker runs it (this machine may have no GPU).
    job = app.submit("gp.model", {}, delay=3600)
    delayed.unschedule(redis_client, job.id)
    meta = {"attempt": 0, "queue": "batch", "priority": 1, "device": "cuda"}
    Execution(app, app.definition("gp.model"), job.id, {}, meta, "gpu-worker@test").run()
    state = job.state()
    assert state.status == "retrying" and state.device == "cuda"
    assert state.error is not None and "retrying on CPU" in state.error.message
    # A CPU worker takes the retry: ctx.device says cpu, and the state records it.
    with batch_worker(broker_url, tmp_path / "w.log"):
        final = job.wait(timeout=30)
    assert final.status == "succeeded", final
    assert final.attempt == 1 and final.device == "cpu" and final.result == {"device": "cpu"}
