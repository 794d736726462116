"""Flower events: Celery-format task events written with each of a job's state changes."""

from __future__ import annotations

from conveyor.middleware.base import Middleware


class FlowerEvents(Middleware):
    """Write Celery's task events (``task-sent``, ``task-received``, ``task-started``,
    ``task-succeeded``, ``task-failed``, ``task-retried``, ``task-revoked``) in the same
    atomic step as each state change they report (:mod:`conveyor.engine.events`), so
    that an unmodified Flower, ``celery events`` or celery-exporter sees every job with
    the outcome ``conveyor status`` shows.

    It has no hooks: the event rides on the state change's own write (no extra round
    trip), which the worker and the client add when the app installs this middleware.
    Without it, no Celery task events are written (worker heartbeats are Celery's own
    and unaffected).
    """
