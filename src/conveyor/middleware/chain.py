"""Calling a list of middleware hooks, each failure logged and isolated."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from conveyor.errors import Defer, SkipJob
from conveyor.middleware.base import Middleware

M = TypeVar("M", bound=Middleware)

log = logging.getLogger("conveyor.middleware")

#: Exceptions a hook raises on purpose, to steer the job; they are passed on.
CONTROL = (SkipJob, Defer)


def overriding(
    middleware: Sequence[M], hook: str, base_class: type[Middleware] = Middleware
) -> list[M]:
    """The middleware that override ``hook`` of ``base_class`` (the rest would only cost a call)."""
    base = getattr(base_class, hook)
    return [mw for mw in middleware if getattr(type(mw), hook, base) is not base]


def call_hooks(
    middleware: Sequence[Middleware],
    hook: str,
    *args: Any,
    reverse: bool = False,
    passes: tuple[type[BaseException], ...] = (),
) -> None:
    """Call ``hook`` on each of ``middleware`` (reversed with ``reverse``).

    An exception from a hook is logged with the middleware's name and the next
    hook still runs, unless it is one of ``passes``: that one propagates.
    """
    for mw in reversed(middleware) if reverse else middleware:
        try:
            getattr(mw, hook)(*args)
        except passes:
            raise
        except Exception:
            log.exception(
                "middleware %s.%s failed; ignored (the job's outcome is unchanged)",
                type(mw).__name__,
                hook,
            )
