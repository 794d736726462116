"""GPU placement: ``gpu="required"`` jobs refused by CPU-only workers, ``gpu="prefer"``
jobs retried on CPU after a GPU out-of-memory error."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from conveyor.middleware.outcome import Outcome
from conveyor.middleware.policy import Policy

if TYPE_CHECKING:
    from conveyor.worker.executor import Execution

log = logging.getLogger("conveyor.worker")


class Gpu(Policy):
    """Gives the ``gpu=`` option of ``@app.job`` its meaning.

    - ``gpu="required"``: a worker without a GPU routes the job back to its queue for
      a GPU worker, and fails it with :class:`~conveyor.errors.NoGpuAvailable` once it
      has waited ``CONVEYOR_GPU_WAIT_S`` (:func:`conveyor.worker.gpu.refuse_without_gpu`).
    - ``gpu="prefer"``: a run that ran out of GPU memory runs again at once on CPU, as
      the next attempt (``ctx.device == "cpu"``); a CPU run that fails then follows the
      job's retry policy.
    """

    options = frozenset({"gpu"})

    def before_start(self, execution: Execution) -> bool:
        """Route a ``gpu="required"`` job back when this worker has no GPU."""
        if execution.definition.gpu != "required":
            return False
        from conveyor.worker.gpu import refuse_without_gpu

        return refuse_without_gpu(
            execution.app,
            execution.definition,
            execution.job_id,
            execution.payload,
            execution.meta,
        )

    def on_failure(
        self, execution: Execution, exc: BaseException, started_at: float
    ) -> Outcome | None:
        """Retry a ``gpu="prefer"`` job on CPU now when it ran out of GPU memory."""
        if execution.definition.gpu != "prefer" or execution.device == "cpu" or not is_gpu_oom(exc):
            return None
        message = f"GPU out of memory on {execution.device}: retrying on CPU ({exc})"
        now = time.time()
        execution._write(
            execution._reschedule,
            execution.attempt + 1,
            now,
            execution._event(
                "retrying",
                error_type=type(exc).__name__,
                error_message=message,
                retry_in_s=0.0,
                device="cpu",
            ),
            {"error_type": type(exc).__name__, "error_message": message, "due_at": now},
            device="cpu",
        )
        log.warning("job %s: %s", execution.job_id, message)
        return Outcome("retrying", error=exc, retry_in_s=0.0)


def is_gpu_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is a GPU out-of-memory error (torch, CUDA, cuDNN, JAX/XLA…).

    Told by class name and message, so no GPU library needs importing.
    """
    name = type(exc).__name__
    text = str(exc).lower()
    if name in ("OutOfMemoryError", "CudaOutOfMemoryError", "GPUOutOfMemoryError"):
        return "cpu" not in text or "cuda" in text
    return "out of memory" in text and any(w in text for w in ("cuda", "gpu", "cudnn", "hip"))
