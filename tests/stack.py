"""What the API, dashboard and browser fixtures share: a Conveyor app and its job store
on a clean keyspace with API keys by role, and uvicorn in a thread on a free port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import uvicorn

from conveyor import Conveyor, Settings
from conveyor.services import apikeys
from conveyor.store import JobStore, open_store
from conveyor.testing import wait_until
from tests.conftest import clean_keyspace

#: A role's key: (tenant, scopes) or (tenant, scopes, create_key's keyword options).
Role = tuple[str, Sequence[str]] | tuple[str, Sequence[str], Mapping[str, Any]]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn in a thread of the test process."""

    def __init__(self, asgi: object, port: int) -> None:
        config = uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=30, what="uvicorn started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Platform:
    """A Conveyor app, its (upgraded) job store, and the secret of each role's key."""

    settings: Settings
    app: Conveyor
    store: JobStore
    keys: dict[str, str]


@contextmanager
def platform(
    broker_url: str, home: Path, roles: Mapping[str, Role], **settings: Any
) -> Iterator[Platform]:
    """Empty the broker's keyspace, open the store under ``home`` and create a key per role.

    ``settings`` are further :class:`Settings` fields. The store is closed on exit.
    """
    client = redis.Redis.from_url(broker_url)
    clean_keyspace(client)
    config = Settings(redis_url=broker_url, home=home, **settings)
    app = Conveyor(config)
    store = open_store(config)
    try:
        store.upgrade()
        keys = {}
        for role, (tenant, scopes, *options) in roles.items():
            extra = dict(options[0]) if options else {}
            keys[role] = apikeys.create_key(store.engine, tenant, list(scopes), **extra).secret
        yield Platform(config, app, store, keys)
    finally:
        store.close()
        client.close()
