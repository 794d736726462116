"""Bodies over 1 MiB are 413, whether they declare a ``Content-Length`` or stream in chunks.

In process and without a lifespan: the limit answers before any broker or store is used.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conveyor import Conveyor, Settings
from conveyor.api import create_app
from conveyor.api.keylimits import MAX_BODY_BYTES


def _chunks() -> Iterator[bytes]:
    """A JSON body a little over the limit, in 64 KiB chunks (no ``Content-Length``)."""
    yield b'{"type": "diag.noop", "payload": {"x": "'
    for _ in range(MAX_BODY_BYTES // 65536 + 1):
        yield b"x" * 65536
    yield b'"}}'


@pytest.fixture(scope="module")
def client() -> TestClient:
    """The API with auth off, on a broker nobody listens on (never reached)."""
    return TestClient(create_app(Conveyor(Settings(redis_url="redis://127.0.0.1:1/0"))))


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/batches"])
def test_a_streamed_body_over_the_limit_is_413(client: TestClient, path: str) -> None:
    reply = client.post(path, content=_chunks(), headers={"Content-Type": "application/json"})
    assert reply.status_code == 413, reply.text
    assert reply.json()["detail"] == f"request body over {MAX_BODY_BYTES} bytes"


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/batches"])
def test_a_declared_length_over_the_limit_is_413(client: TestClient, path: str) -> None:
    body = b"".join(_chunks())
    reply = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413, reply.text
