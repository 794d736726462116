"""Delivery leases and the orphan rescue, as middleware (wrapping :mod:`conveyor.worker.rescue`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from conveyor.middleware.base import Middleware

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.worker.rescue import Rescuer

log = logging.getLogger("conveyor.worker")


class Leases(Middleware):
    """Renew the leases of a worker's in-flight deliveries and rescue dead workers' ones.

    At each heartbeat (``CONVEYOR_HEARTBEAT_S``), in the heartbeat's own round trip,
    the worker renews the lease of every delivery it holds, so kombu's visibility
    sweep never hands a long job to a second worker; after the heartbeat it re-queues
    the deliveries of workers whose heartbeat stopped three intervals ago (a
    ``kill -9``, a lost host), and its own orphaned ones (:class:`~conveyor.worker.rescue.Rescuer`).

    The heartbeat thread itself is the worker's (it registers the worker, whatever
    the middleware list); this middleware gives it the lease work to carry. Without
    it, the worker renews no lease and rescues nothing: a dead worker's jobs come
    back only after the broker's visibility timeout (kombu's own sweep), and a job
    running longer than that timeout is delivered twice.
    """

    def rescuer(self, app: Conveyor, worker: str) -> Rescuer:
        """The lease renewal and rescue of worker ``worker``, for its heartbeat to drive."""
        from conveyor.worker.rescue import Rescuer

        return Rescuer(app.redis, worker, app.settings.heartbeat_s, app.topology.queue_names())


def worker_rescuer(app: Conveyor, worker: str) -> Rescuer | None:
    """The rescuer of the app's :class:`Leases` middleware for ``worker``, or None without
    one (or when it failed: logged, and the worker runs as without it)."""
    leases = app.hooks.leases
    if leases is None:
        return None
    try:
        return leases.rescuer(app, worker)
    except Exception:
        log.exception("middleware %s.rescuer failed; ignored (no leases)", type(leases).__name__)
        return None
