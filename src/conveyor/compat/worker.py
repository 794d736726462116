"""The worker's side of Celery compatibility, installed by ``conveyor worker`` in one call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.compat.control import install_revoke, install_scheduled
from conveyor.compat.relay import Relay
from conveyor.compat.strategy import connect_unknown_tasks

if TYPE_CHECKING:
    from conveyor.app import Conveyor


class CeleryCompat:
    """Revoke as cancellation, unknown tasks recorded, and (unless turned off) the relay."""

    def __init__(self, app: Conveyor, queues: list[str]) -> None:
        install_revoke(app)
        install_scheduled(app, queues)
        connect_unknown_tasks(app)
        self.relay: Relay | None = None
        if app.settings.celery_relay:
            self.relay = Relay(
                app.redis,
                app.topology.queue_names(),
                app.topology.default_queue,
                poll_s=app.settings.delayed_poll_s,
            )

    def start(self) -> None:
        """Start the relay thread (when on)."""
        if self.relay is not None:
            self.relay.start()

    def stop(self) -> None:
        """Stop the relay thread."""
        if self.relay is not None:
            self.relay.stop()
