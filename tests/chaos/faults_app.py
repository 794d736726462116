"""The application the fault tests run in their workers.

The built-in jobs plus three that return awkward results: ``faults.echo`` returns
its payload's ``value`` (any JSON value) after ``seconds``; ``faults.circular``
and ``faults.tuple_keys`` return values JSON cannot encode. Workers load it with
``CONVEYOR_APP=tests.chaos.faults_app:app``.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field

from conveyor import Conveyor, JobContext, Settings

ECHO = "faults.echo"
CIRCULAR = "faults.circular"
TUPLE_KEYS = "faults.tuple_keys"


class EchoInput(BaseModel):
    """What to return, and how long to take first."""

    value: Any = None
    seconds: float = Field(0.0, ge=0, le=60)


def echo(ctx: JobContext, params: EchoInput) -> Any:
    """Return ``value`` unchanged after ``seconds``."""
    time.sleep(params.seconds)
    return params.value


def circular(ctx: JobContext, params: EchoInput) -> Any:
    """Return a dict that contains itself."""
    looped: dict[str, Any] = {"name": "loop"}
    looped["self"] = looped
    return looped


def tuple_keys(ctx: JobContext, params: EchoInput) -> Any:
    """Return a dict keyed by tuples."""
    return {(1, 2): "pair"}


def make_app(settings: Settings | None = None) -> Conveyor:
    """The built-in app plus the fault jobs (no retries: a failure is final at once)."""
    app = Conveyor(settings)
    app.job(ECHO, retries=0)(echo)
    app.job(CIRCULAR, retries=0)(circular)
    app.job(TUPLE_KEYS, retries=0)(tuple_keys)
    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, not at import (nothing happens at import time).
    if name == "app":
        return make_app()
    raise AttributeError(name)
