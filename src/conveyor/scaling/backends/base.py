"""What a scaling back end does, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from conveyor.errors import ConveyorError


class BackendError(ConveyorError):
    """A back end could not read or change a worker count (API unreachable, command failed).

    The manager logs it, records it in the profile's status and keeps the
    workers it has.
    """


@dataclass(frozen=True)
class Usage:
    """Resource use of one profile's workers, as a back end can measure it."""

    cpu_pct: float | None = None
    memory_pct: float | None = None


@dataclass(frozen=True)
class HealthEvent:
    """A worker the back end found unhealthy, and what it did about it."""

    profile: str
    worker: str
    reason: str
    action: str
    requeued: tuple[str, ...] = ()


class Backend(Protocol):
    """Starts and stops a profile's workers somewhere (local processes, pods, containers)."""

    #: ``local``, ``kubernetes`` or ``compose``.
    name: str

    def current(self, profile: str) -> int:
        """How many workers of ``profile`` run now (not counting ones shutting down)."""
        ...

    def scale(self, profile: str, count: int) -> None:
        """Make ``profile`` run ``count`` workers; removed ones shut down warm."""
        ...

    def usage(self, profile: str) -> Usage:
        """CPU and memory use of ``profile``'s workers (None where unknown)."""
        ...

    def check_health(self) -> list[HealthEvent]:
        """Find unhealthy workers and replace them where this back end can."""
        ...

    def close(self, grace_s: float) -> None:
        """Release what the back end holds; the local one stops its workers warm."""
        ...
