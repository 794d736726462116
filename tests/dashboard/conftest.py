"""Dashboard fixtures: the API in process (TestClient) on the session broker, with keys by role.

Jobs are submitted without a worker and recorded by an in-process recorder
(:meth:`Recorder.drain`), so these tests start no subprocess.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conveyor import Conveyor
from conveyor.api import create_app
from conveyor.store.recorder import Recorder
from tests.stack import Role, platform

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Dash:
    """The in-process API, its Conveyor app, keys by role, and jobs by tenant."""

    http: TestClient
    app: Conveyor
    keys: dict[str, str]
    store: Any
    jobs: dict[str, str] = field(default_factory=dict)

    def record(self) -> None:
        """Write every event so far into the job store."""
        Recorder(self.store, self.app.redis, consumer="test").drain()

    def sign_in(self, role: str) -> TestClient:
        """The client, signed in with the key of ``role`` (its cookie replaces any other)."""
        self.http.cookies.clear()
        reply = self.http.post("/login", data={"api_key": self.keys[role], "next": "/jobs"})
        assert reply.status_code == 303, reply.text
        return self.http

    def csrf(self, path: str = "/jobs") -> str:
        """The CSRF token of the signed-in session, read from a page's forms."""
        found = CSRF.search(self.http.get(path).text)
        assert found, "no CSRF token on the page"
        return found.group(1)


@pytest.fixture(scope="package")
def dash(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    """The API with auth on; tenants a and b each own one queued job."""
    home = tmp_path_factory.mktemp("dash-home")
    roles: dict[str, Role] = {
        "reader": ("tenant-a", ["read"]),
        "writer": ("tenant-a", ["submit", "read"]),
        "b": ("tenant-b", ["read"]),
        "admin": ("ops", ["admin"]),
        "submit-only": ("tenant-a", ["submit"]),
    }
    with (
        platform(broker_url, home, roles, api_key_cache_s=0.2) as base,
        TestClient(create_app(base.app, auth=True), follow_redirects=False) as http,
    ):
        app = base.app
        dash = Dash(http, app, base.keys, base.store)
        dash.jobs["a"] = app.submit("diag.sleep", {"seconds": 7.5}, tenant="tenant-a").id
        dash.jobs["b"] = app.submit("diag.noop", {}, tenant="tenant-b").id
        dash.record()
        yield dash
