"""What a stock Celery producer writes to Redis, and how Conveyor reads it.

Stock kombu names a queue's priority lists ``queue`` and ``queue\\x06\\x163``,
``\\x06\\x166``, ``\\x06\\x169`` (priority steps 0/3/6/9, separator ``\\x06\\x16``),
and on Redis priority 0 is the *most* urgent. Conveyor's own lists are
``queue`` and ``queue:1`` … ``queue:10``, 10 the most urgent. A stock
message is mapped onto Conveyor's levels by :func:`conveyor_level`:

=================  =========================================
stock priority     Conveyor level
=================  =========================================
none given, or 0   the job type's (its queue's) default
1 … 9              10 − p (1 → 9, 9 → 1)
=================  =========================================

kombu writes priority 0 when a producer gives none, so an explicit 0 cannot be
told from "none given": both keep the job type's default rather than jump every
stock message to the front.
"""

from __future__ import annotations

from typing import Any

from conveyor.topology import MAX_PRIORITY, MIN_PRIORITY

#: Stock kombu's separator between a queue name and its priority step.
SEP = "\x06\x16"
#: Stock kombu's priority steps (the non-zero ones have their own list).
STEPS = (0, 3, 6, 9)
#: The queue a stock Celery app sends to when it names none.
DEFAULT_QUEUE = "celery"
#: kombu's binding tables: one set per exchange (``_kombu.binding.EXCHANGE``).
BINDING_PREFIX = "_kombu.binding."


def stock_lists(queue: str, *, bare: bool) -> list[str]:
    """The lists a stock producer writes for ``queue`` (the bare name only if ``bare``)."""
    names = [f"{queue}{SEP}{step}" for step in STEPS[1:]]
    return [queue, *names] if bare else names


def conveyor_level(priority: Any, default: int) -> int:
    """A stock message's priority (0 most urgent) as a Conveyor level (10 most urgent)."""
    if priority is None or isinstance(priority, bool):
        return default
    try:
        value = int(priority)
    except (TypeError, ValueError):
        return default
    if value <= 0:
        return default
    return max(MIN_PRIORITY, min(MAX_PRIORITY, MAX_PRIORITY - min(9, value)))


def split_binding(entry: str, *seps: str) -> tuple[str, str, str] | None:
    """``(routing_key, pattern, queue)`` of one binding-table entry, whichever ``sep`` wrote it.

    A binding table is shared by every client of the broker: stock Celery clients
    write ``\\x06\\x16``-separated entries, Conveyor ``:``-separated ones.
    """
    for sep in seps:
        parts = entry.split(sep)
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
    return None


def is_control_exchange(exchange: str) -> bool:
    """Whether ``exchange`` carries Celery's control or event traffic (never jobs)."""
    return exchange.endswith(".pidbox") or exchange in ("celeryev", "celery.pidbox")
