"""A job that needs a GPU, delivered to a worker without one, goes back whole."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, keys
from conveyor.enqueue import mover
from conveyor.worker import gpu
from conveyor.worker.inline import decode


class Empty(BaseModel):
    """No input."""


def render(ctx: JobContext, params: Empty) -> None:
    """Stands for a job that needs a GPU."""


def test_a_job_routed_back_for_a_gpu_keeps_its_own_time_limits(
    app: Conveyor, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.job("gpu.render", queue="processing", gpu="required")(render)
    job = app.submit("gpu.render", {}, priority=3, time_limit=30, soft_time_limit=20)
    queue = keys.queue_list("processing", 3)
    _, job_id, payload, meta, _ = decode(redis_client.rpop(queue) or b"")
    monkeypatch.setattr(gpu, "WORKER_GPUS", [])  # a worker on a host without a GPU
    assert gpu.refuse_without_gpu(app, app.definition("gpu.render"), job_id, payload, meta)
    assert redis_client.llen(queue) == 0 and job.state().status == "queued"
    assert mover(app).move_due(now=time.time() + gpu.ROUTE_BACK_S + 1) == 1
    _, again, _, meta_again, _ = decode(redis_client.rpop(queue) or b"")
    assert again == job.id
    limits: dict[str, Any] = {k: meta_again.get(k) for k in ("time_limit", "soft_time_limit")}
    assert limits == {"time_limit": 30.0, "soft_time_limit": 20.0}
