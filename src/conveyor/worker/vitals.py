"""What a worker reports at each heartbeat besides being alive: jobs, memory, GPU."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import psutil


def vitals_reader(gpu: str) -> Callable[[], dict[str, Any]]:
    """A function returning this worker's active jobs, processed count, RSS and GPU.

    Celery's main process keeps the requests it handed to the pool
    (``active_requests``) and the number it accepted (``all_total_count``) in
    :mod:`celery.worker.state`; the heartbeat thread runs in that process.
    """
    me = psutil.Process(os.getpid())

    def read() -> dict[str, Any]:
        from celery.worker import state

        rss = 0
        with contextlib.suppress(psutil.Error):
            rss = me.memory_info().rss
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss += child.memory_info().rss
        return {
            "active": len(state.active_requests),
            "processed": int(state.all_total_count[0]),
            "rss_bytes": rss,
            "gpu": gpu,
        }

    return read


def gpu_label(names: list[str]) -> str:
    """How a worker names its GPU(s): the visible device ids and model, or empty for CPU."""
    if not names:
        return ""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    model = names[0] if len(set(names)) == 1 else ", ".join(names)
    return f"{visible}:{model}" if visible else f"{len(names)}× {model}"
