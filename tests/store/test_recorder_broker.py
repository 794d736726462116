"""The recorder through a broker restart: it reconnects and loses nothing accepted."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis
from tests.store.conftest import emit_jobs, wait_recorded
from tests.store.test_recorder import ids, running

from conveyor import Conveyor, Settings
from conveyor.broker.embedded import EmbeddedBroker
from conveyor.store import JobStore
from conveyor.store.recorder import Recorder
from conveyor.testing import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_recorder_rides_out_a_broker_restart(
    store: JobStore, store_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if store.dialect == "postgresql":
        pytest.skip("the broker side is the same for both back ends")
    home, port = tmp_path / "broker", _free_port()
    broker = EmbeddedBroker(home, port=port)
    url = broker.start()
    client = redis.Redis.from_url(url)
    writer = Conveyor(store_settings.model_copy(update={"redis_url": url})).event_writer()
    recorder = Recorder(store, redis.Redis.from_url(url), block_s=0.2)
    try:
        with running(recorder):
            emit_jobs(writer, ids(50, prefix="before"))
            wait_recorded(client)
            broker.stop()
            wait_until(lambda: "broker unreachable" in caplog.text, timeout=30)
            broker = EmbeddedBroker(home, port=port)
            assert broker.start() == url
            emit_jobs(writer, ids(50, prefix="after"))
            wait_recorded(client)
        assert store.count_by_status() == {"succeeded": 100}
        assert "broker reachable again" in caplog.text
    finally:
        client.close()
        broker.stop()
