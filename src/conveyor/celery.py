"""The configured Celery app, for Celery's own tools: ``celery -A conveyor.celery …``.

``celery -A conveyor.celery inspect ping`` (``active``, ``stats``, ``scheduled``,
``registered``…), ``celery -A conveyor.celery control revoke ID`` and ``flower
-A conveyor.celery`` load the application named by ``CONVEYOR_APP`` (or the
built-in one) with the broker, transport and queues Conveyor's workers use.
The app is built on first access, not at import.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery

from conveyor.app import load_app
from conveyor.settings import Settings

__all__ = ["get_app"]


@cache
def get_app() -> Celery:
    """The Celery app of the application ``CONVEYOR_APP`` names (built once)."""
    return load_app(Settings.load().app).celery


def __getattr__(name: str) -> Any:
    # Celery's ``-A`` looks up ``app`` (then ``celery``) on the module.
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
