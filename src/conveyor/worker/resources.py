"""Objects loaded once per worker process by ``@app.on_worker_start`` hooks (models…).

Each hook runs once in every process that runs jobs (each prefork pool child,
or the worker's own process for the threads and solo pools); what it returns
is kept under the hook's name and reachable from jobs as ``ctx.resources``::

    @app.on_worker_start
    def model():
        return load_model(settings.model_cache_dir)

    @app.job("music.generate", queue="generation", gpu="prefer")
    def generate(ctx: JobContext, params: GenerateInput) -> dict:
        return ctx.resources["model"].generate(params.prompt)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("conveyor.worker")

#: Hook name → what it returned, in this process.
RESOURCES: dict[str, Any] = {}


def run_start_hooks(hooks: list[Callable[[], Any]]) -> None:
    """Run each hook not yet run in this process and keep its result."""
    for hook in hooks:
        name = getattr(hook, "__name__", repr(hook))
        if name in RESOURCES:
            continue
        RESOURCES[name] = hook()
        log.info("worker start hook %s loaded", name)
