"""The embedded broker: password-protected, persistent, found by every command of the same home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings
from conveyor.broker.embedded import EmbeddedBroker, discover
from conveyor.errors import BrokerError


def test_embedded_broker_is_protected_persistent_and_discoverable(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path)
    url = broker.start()
    try:
        assert url.startswith("redis://conveyor:") and "@127.0.0.1:" in url
        port = url.rsplit(":", 1)[1].split("/")[0]
        anonymous = redis.Redis(host="127.0.0.1", port=int(port))
        with pytest.raises(redis.exceptions.ResponseError):
            anonymous.set("x", "1")
        info = discover(tmp_path)
        assert info is not None and info["url"] == url
        assert (tmp_path / "broker.json").stat().st_mode & 0o077 == 0
        app = Conveyor(Settings(home=tmp_path))
        assert app.broker_url == url
        app.check_broker()
        assert redis.Redis.from_url(url).config_get("appendonly")["appendonly"] == "yes"
        with pytest.raises(BrokerError, match="already runs"):
            EmbeddedBroker(tmp_path).start()
    finally:
        broker.stop()
    assert discover(tmp_path) is None


def test_data_survives_a_restart(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path)
    client = redis.Redis.from_url(broker.start())
    client.set("conveyor:test", "kept")
    client.close()
    broker.stop()
    again = EmbeddedBroker(tmp_path)
    try:
        assert redis.Redis.from_url(again.start()).get("conveyor:test") == b"kept"
    finally:
        again.stop()


def test_server_is_out_of_the_callers_process_group(tmp_path: Path) -> None:
    # A terminal's Ctrl-C signals the whole foreground process group; the broker must
    # not get it, so that workers finish their jobs before the stack stops it last.
    broker = EmbeddedBroker(tmp_path)
    broker.start()
    try:
        info = discover(tmp_path)
        assert info is not None
        assert os.getpgid(info["pid"]) != os.getpgid(0)
        assert os.getsid(info["pid"]) == info["pid"]
    finally:
        broker.stop()
    assert discover(tmp_path) is None
