"""A broker that refuses writes is told apart from other errors, and waited for."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from conveyor import Conveyor, Settings, keys
from conveyor.broker.outage import refuses_writes, wait_for_broker
from conveyor.events import new_event
from conveyor.testing import embedded_broker, wait_until


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (redis.ResponseError("MISCONF Valkey is configured to save RDB snapshots"), True),
        (
            redis.ResponseError(
                "Command # 1 (EVALSHA abc 2 conveyor:job:x) of pipeline caused error: "
                "MISCONF Errors writing to the AOF file"
            ),
            True,
        ),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
        (redis.ResponseError("ERR Error running script: attempt to index a nil value"), False),
        (redis.ConnectionError("Connection refused"), False),
    ],
)
def test_refusals_are_told_apart(error: Exception, refused: bool) -> None:
    assert refuses_writes(error) is refused


def test_a_state_write_waits_for_a_read_only_broker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.broker")
    with embedded_broker(tmp_path / "broker") as url:
        client = redis.Redis.from_url(url)
        writer = Conveyor(Settings(redis_url=url, home=tmp_path / "home")).event_writer()
        event = new_event("started", "job-1", "diag.noop", "processing")
        # A replica of a master that is not there: every write answers READONLY.
        client.replicaof("127.0.0.1", "1")
        done: list[Any] = []
        thread = threading.Thread(
            target=lambda: done.append(wait_for_broker(writer.emit, event, mode="start"))
        )
        thread.start()
        try:
            wait_until(lambda: "broker refuses writes" in caplog.text, what="the refusal")
            assert not done and client.hget(keys.job("job-1"), "status") is None
        finally:
            client.replicaof("NO", "ONE")
        thread.join(timeout=30)
        assert done and done[0].applied
        assert client.hget(keys.job("job-1"), "status") == b"started"
        client.close()
