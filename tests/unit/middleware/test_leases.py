"""The Leases middleware gives a worker's heartbeat its lease renewal and rescue."""

from __future__ import annotations

import logging

import pytest
import redis

from conveyor import Conveyor, Settings, keys
from conveyor.middleware import Leases, default_middleware
from conveyor.middleware.leases import worker_rescuer
from conveyor.worker.heartbeats import Heartbeat
from conveyor.worker.rescue import Rescuer


def test_the_heartbeat_renews_leases_with_it(settings: Settings, redis_client: redis.Redis) -> None:
    app = Conveyor(settings, packs=[])
    rescuer = worker_rescuer(app, "w-1@host")
    assert isinstance(rescuer, Rescuer) and rescuer.name == "w-1@host"
    assert rescuer.interval_s == settings.heartbeat_s
    beat = Heartbeat(redis_client, "w-1@host", "default", ["processing"], 1, 5.0)
    beat.on_beat = rescuer.renew
    beat.beat()
    # Registered as a holder in the heartbeat's own round trip: the rescue's input.
    assert redis_client.sismember(keys.HOLDERS, "w-1@host")


def test_without_it_the_worker_has_no_rescuer(settings: Settings) -> None:
    defaults = [mw for mw in default_middleware() if not isinstance(mw, Leases)]
    app = Conveyor(settings, default_middleware=defaults, packs=[])
    assert app.hooks.leases is None
    assert worker_rescuer(app, "w-1@host") is None


def test_a_raising_leases_is_logged_and_skipped(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenLeases(Leases):
        def rescuer(self, app: Conveyor, worker: str) -> Rescuer:
            raise RuntimeError("leases broke")

    app = Conveyor(settings, default_middleware=[BrokenLeases()], packs=[])
    with caplog.at_level(logging.ERROR, "conveyor.worker"):
        assert worker_rescuer(app, "w-1@host") is None
    assert "BrokenLeases.rescuer failed" in caplog.text
