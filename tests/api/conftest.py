"""API fixtures: a real uvicorn server on a free port, a worker and a recorder subprocess.

One server, worker and recorder serve the whole package (starting them is the
slow part); tests use their own keys and jobs, so they do not disturb each other.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from conveyor import Conveyor, Settings
from conveyor.api import create_app
from conveyor.services import apikeys
from conveyor.store import open_store
from conveyor.testing import WorkerProcess, wait_until
from tests.conftest import clean_keyspace

RATE_LIMIT = "40/s"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Api:
    """The running API: its base URL, the app behind it, and keys by role."""

    url: str
    app: Conveyor
    keys: dict[str, str]
    home: Path

    def client(self, role: str | None = "a") -> httpx.Client:
        """A client sending the key of ``role`` (None: no key)."""
        headers = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


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


@pytest.fixture(scope="package")
def api(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Server + one processing worker + the recorder, on a clean keyspace."""
    home = tmp_path_factory.mktemp("api-home")
    client = redis.Redis.from_url(broker_url)
    clean_keyspace(client)
    settings = Settings(
        redis_url=broker_url, home=home, api_rate_limit=RATE_LIMIT, api_key_cache_s=0.5
    )
    app = Conveyor(settings)
    store = open_store(settings)
    store.upgrade()
    keys = {
        "a": apikeys.create_key(
            store.engine, "tenant-a", ["submit", "read"], queues=["critical"]
        ).secret,
        "b": apikeys.create_key(store.engine, "tenant-b", ["submit", "read"]).secret,
        "reader": apikeys.create_key(store.engine, "tenant-a", ["read"]).secret,
        "admin": apikeys.create_key(store.engine, "ops", ["admin"]).secret,
        "burst": apikeys.create_key(store.engine, "tenant-c", ["submit", "read"]).secret,
    }
    env = dict(os.environ, REDIS_URL=broker_url, CONVEYOR_HOME=str(home))
    log = home / "recorder.log"
    with open(log, "wb") as out:
        recorder = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "recorder"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    port = free_port()
    worker = WorkerProcess(
        broker_url,
        profile="processing",
        concurrency=2,
        queues=["processing", "batch"],
        log_path=home / "worker.log",
        env={"CONVEYOR_HOME": str(home)},
    )
    try:
        with ServerThread(create_app(app, auth=True), port), worker:
            yield Api(f"http://127.0.0.1:{port}", app, keys, home)
    finally:
        recorder.terminate()
        recorder.wait(timeout=15)
        store.close()
        client.close()
