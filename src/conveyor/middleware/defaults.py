"""The middleware every app installs unless told otherwise."""

from __future__ import annotations

from conveyor.middleware.base import Middleware
from conveyor.middleware.deadletters import DeadLetters
from conveyor.middleware.deliveries import DeliveryLimit
from conveyor.middleware.flower import FlowerEvents
from conveyor.middleware.gpu import Gpu
from conveyor.middleware.leases import Leases
from conveyor.middleware.progress import Progress
from conveyor.middleware.ratelimits import RateLimits
from conveyor.middleware.retries import Retries
from conveyor.middleware.timelimits import TimeLimits


def default_middleware() -> list[Middleware]:
    """New instances of Conveyor's built-in middleware, in the order they run.

    ``Conveyor(middleware=[...])`` adds an application's middleware after these;
    ``Conveyor(default_middleware=[...])`` replaces them, e.g. without one::

        Conveyor(default_middleware=[
            mw for mw in default_middleware() if not isinstance(mw, RateLimits)
        ])

    GPU placement comes first (a job routed back takes no rate-limit slot), and
    the CPU fallback decides a failure before retries do.
    """
    return [
        TimeLimits(),
        Gpu(),
        RateLimits(),
        DeliveryLimit(),
        Retries(),
        DeadLetters(),
        FlowerEvents(),
        Progress(),
        Leases(),
    ]
