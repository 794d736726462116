"""``conveyor flower``: Flower on this application's own Celery configuration.

Flower runs with Conveyor's transport (kombu's stock one writes exchange bindings
with another separator, so workers could not answer its inspect and control
commands). Two things are adjusted for its Broker tab and ``/api/queues/length``,
which size queues by reading the Redis lists themselves: the list names (levels
0–10 of each queue, ``queue`` and ``queue:N``), and the broker URL, whose scheme
Flower uses to pick its Redis client (Conveyor's transport is named by its import
path there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor import keys
from conveyor.engine.transport import LEVELS

if TYPE_CHECKING:
    from conveyor.app import Conveyor


def run_flower(app: Conveyor, argv: list[str]) -> None:
    """Run Flower in this process with ``argv`` (Flower's own options) until stopped."""
    from flower.app import Flower

    celery_app = app.celery
    options = dict(celery_app.conf.broker_transport_options or {})
    options.update(priority_steps=list(LEVELS), sep=keys.PRIORITY_SEP)
    celery_app.conf.broker_transport_options = options
    url = app.broker_url
    Flower.broker_uri_with_password = property(lambda self: url)
    celery_app.start(["flower", *argv])
