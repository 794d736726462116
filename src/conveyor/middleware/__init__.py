"""Middleware: the one extension point around a job's life (see docs/middleware.md)."""

from conveyor.middleware.base import Middleware
from conveyor.middleware.outcome import Outcome

__all__ = ["Middleware", "Outcome"]
