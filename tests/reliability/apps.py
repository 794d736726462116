"""Job types for the reliability tests, loaded by their workers as
``CONVEYOR_APP=tests.reliability.apps:app``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from conveyor import Conveyor, JobContext

if TYPE_CHECKING:
    from conveyor.testing import WorkerProcess


class Tick(BaseModel):
    n: int = 0


class Order(BaseModel):
    user: str
    item: str = ""
    note: str = ""


def tick(ctx: JobContext, params: Tick) -> dict[str, float]:
    return {"at": time.time(), "pid": os.getpid()}


def order(ctx: JobContext, params: Order) -> None:
    pass


class CudaOutOfMemoryLike(RuntimeError):
    """Stands for ``torch.cuda.OutOfMemoryError`` (told by class name and message)."""


CudaOutOfMemoryLike.__name__ = "OutOfMemoryError"


def model(ctx: JobContext, params: Tick) -> dict[str, str]:
    if ctx.device != "cpu":
        raise CudaOutOfMemoryLike("CUDA out of memory. Tried to allocate 2.00 GiB")
    return {"device": ctx.device}


def crash(ctx: JobContext, params: Tick) -> None:
    """Kills its own process, as a segfault or the kernel's OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


def register(app: Conveyor) -> None:
    """Add the test job types to ``app``."""
    app.job("rl.tick", queue="batch", retries=0, rate_limit="5/s")(tick)
    app.job("uq.order", queue="batch", unique=["user", "item"], unique_ttl=30)(order)
    app.job("uq.payload", queue="batch", unique=True)(order)
    app.job("hy.pid", queue="batch", retries=0)(tick)
    app.job("gp.model", queue="batch", retries=0, gpu="prefer")(model)
    app.job("hy.crash", queue="batch", retries=0)(crash)


app = Conveyor()
register(app)


def batch_worker(
    broker_url: str, log_path: Path, *, concurrency: int = 1, env: dict[str, str] | None = None
) -> WorkerProcess:
    """A worker of the ``batch`` profile (queue ``batch``) running this module's ``app``."""
    from conveyor.testing import WorkerProcess

    return WorkerProcess(
        broker_url,
        profile="batch",
        concurrency=concurrency,
        queues=["batch"],
        app="tests.reliability.apps:app",
        env=env,
        log_path=log_path,
    )
