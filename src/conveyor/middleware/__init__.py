"""Middleware: the one extension point around a job's life (see docs/middleware.md).

Conveyor's own policies are middleware too, installed by default
(:func:`default_middleware`): :class:`TimeLimits`, :class:`Gpu`,
:class:`RateLimits`, :class:`DeliveryLimit`, :class:`Retries`,
:class:`DeadLetters`, :class:`FlowerEvents`, :class:`Progress` and :class:`Leases`.
"""

from conveyor.middleware.base import Middleware
from conveyor.middleware.deadletters import DeadLetters
from conveyor.middleware.defaults import default_middleware
from conveyor.middleware.deliveries import DeliveryLimit
from conveyor.middleware.flower import FlowerEvents
from conveyor.middleware.gpu import Gpu
from conveyor.middleware.leases import Leases
from conveyor.middleware.outcome import Outcome
from conveyor.middleware.progress import Progress
from conveyor.middleware.ratelimits import RateLimits
from conveyor.middleware.retries import Retries
from conveyor.middleware.timelimits import TimeLimits

__all__ = [
    "DeadLetters",
    "DeliveryLimit",
    "FlowerEvents",
    "Gpu",
    "Leases",
    "Middleware",
    "Outcome",
    "Progress",
    "RateLimits",
    "Retries",
    "TimeLimits",
    "default_middleware",
]
