"""The platform's own job types (the upkeep pack's, on the internal ``monitoring`` queue)
are an admin's only: other keys can neither submit nor list them. In process, no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conveyor import Conveyor, Settings
from conveyor.api import create_app
from conveyor.cli.main import _register, cli
from conveyor.services import apikeys
from conveyor.store import open_store


@pytest.fixture
def client(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """An in-process API (auth on) and headers per role; both keys may also use ``critical``."""
    configured = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'jobs.db'}"})
    store = open_store(configured)
    store.upgrade()
    secrets = {
        "tenant": apikeys.create_key(
            store.engine, "acme", ["submit", "read"], queues=["critical"]
        ).secret,
        "admin": apikeys.create_key(store.engine, "ops", ["admin"], queues=["critical"]).secret,
    }
    store.close()
    headers = {role: {"Authorization": f"Bearer {key}"} for role, key in secrets.items()}
    with TestClient(create_app(Conveyor(configured), auth=True)) as http:
        yield http, headers


def test_a_tenant_key_cannot_submit_the_platforms_own_jobs(
    client: tuple[TestClient, dict[str, dict[str, str]]], redis_client: redis.Redis
) -> None:
    http, headers = client
    for queue in (None, "critical"):
        job = {"type": "upkeep.retention"} | ({"queue": queue} if queue else {})
        reply = http.post("/api/v1/jobs", json=job, headers=headers["tenant"])
        assert reply.status_code == 403, reply.text
        assert "upkeep.retention is internal to Conveyor" in reply.json()["detail"]
        batch = http.post(
            "/api/v1/batches",
            json={"jobs": [{"type": "diag.noop"}, job]},
            headers=headers["tenant"],
        )
        assert batch.status_code == 403, batch.text
    assert redis_client.llen("critical") == redis_client.llen("monitoring") == 0
    # The tenant's own job types are unaffected.
    ok = http.post("/api/v1/jobs", json={"type": "diag.noop"}, headers=headers["tenant"])
    assert ok.status_code == 202, ok.text
    # An admin key still may, to a queue it was given (auth off acts as an admin).
    admin = http.post(
        "/api/v1/jobs",
        json={"type": "upkeep.retention", "queue": "critical"},
        headers=headers["admin"],
    )
    assert admin.status_code == 202, admin.text


def test_job_types_lists_the_platforms_own_to_admins_only(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    http, headers = client
    seen = {
        role: {t["name"] for t in http.get("/api/v1/job-types", headers=h).json()}
        for role, h in headers.items()
    }
    assert "diag.noop" in seen["tenant"] and "diag.noop" in seen["admin"]
    assert not any(name.startswith("upkeep.") for name in seen["tenant"])
    assert "upkeep.retention" in seen["admin"]


def test_conveyor_submit_still_sends_the_platforms_own_jobs(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI is local and trusted: it submits through the app, not the API's key policy.
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("CONVEYOR_HOME", str(settings.home))
    _register()
    out = CliRunner().invoke(cli, ["submit", "upkeep.retention", "--json"])
    assert out.exit_code == 0, out.output
    assert redis_client.llen("monitoring") == 1


def test_the_openapi_document_leaves_the_platforms_own_payloads_out(
    client: tuple[TestClient, dict[str, dict[str, str]]],
) -> None:
    http, _ = client
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    assert "payload:diag.noop" in schemas
    assert not [name for name in schemas if name.startswith("payload:upkeep.")]
