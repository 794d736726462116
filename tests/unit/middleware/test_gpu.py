"""Gpu: ``gpu="prefer"`` falls back to CPU on GPU out-of-memory; ``gpu="required"`` is
routed back by a worker without a GPU, then failed once it waited too long."""

from __future__ import annotations

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings, keys
from conveyor.testing import drain
from conveyor.worker import gpu


class Empty(BaseModel):
    pass


class OutOfMemoryError(RuntimeError):
    """Named like torch's, which is all the fallback looks at."""


def test_gpu_out_of_memory_runs_again_on_cpu_at_once(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu, "WORKER_GPUS", ["GPU 0"])  # this process acts as a GPU worker
    app = Conveyor(settings)

    @app.job("t.model", queue="processing", gpu="prefer", retries=0)
    def model(ctx: JobContext, params: Empty) -> dict[str, str]:
        if ctx.device == "cuda":
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return {"device": ctx.device}

    job = app.submit("t.model", {})
    # The CPU run is due at once: it uses no backoff, and none of the job's retries.
    assert drain(app, delayed_within_s=0) == [job.id, job.id]
    state = job.state()
    assert state.status == "succeeded" and state.result == {"device": "cpu"}
    assert state.attempt == 1 and state.device == "cpu"


def test_a_gpu_only_job_is_routed_back_then_failed(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu, "WORKER_GPUS", [])  # a worker without a GPU
    app = Conveyor(settings.model_copy(update={"gpu_wait_s": 0.001}))

    @app.job("t.gpu_only", queue="processing", gpu="required")
    def gpu_only(ctx: JobContext, params: Empty) -> None:
        raise AssertionError("never runs without a GPU")

    job = app.submit("t.gpu_only", {})
    drain(app)
    assert job.state().status == "queued"  # handed back for a GPU worker, not started
    assert redis_client.zscore(keys.DELAYED, job.id) is not None
    drain(app, delayed_within_s=gpu.ROUTE_BACK_S + 5)
    state = job.state()
    assert state.status == "failed"
    assert state.error is not None and state.error.type == "NoGpuAvailable"
