"""Middleware: the one extension point around job execution."""

from conveyor.middleware.base import Middleware

__all__ = ["Middleware"]
