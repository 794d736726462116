"""Keys and tenants: 401 without a valid key, 403 without the scope, 404 across tenants."""

from __future__ import annotations

from conveyor.services import apikeys
from conveyor.store import open_store
from conveyor.testing import wait_until
from tests.api.conftest import Api


def test_missing_malformed_or_unknown_key_is_401(api: Api) -> None:
    with api.client(None) as http:
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer cvk_nope"}):
            reply = http.get("/api/v1/queues", headers=headers)
            assert reply.status_code == 401, headers
            assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_a_key_without_the_scope_is_403(api: Api) -> None:
    with api.client("reader") as http:
        assert http.get("/api/v1/queues").status_code == 200
        assert http.post("/api/v1/jobs", json={"type": "diag.noop"}).status_code == 403
        assert http.post("/api/v1/monitoring/tasks/cleanup").status_code == 403
        assert http.get("/api/v1/scaling").status_code == 403


def test_tenants_do_not_see_each_others_jobs_either_way(api: Api) -> None:
    with api.client("a") as a, api.client("b") as b:
        job_a = a.post("/api/v1/jobs", json={"type": "diag.noop", "delay": 60}).json()
        job_b = b.post("/api/v1/jobs", json={"type": "diag.noop", "delay": 60}).json()
        for client, other in ((a, job_b), (b, job_a)):
            for method, path in (
                ("GET", ""),
                ("GET", "/result"),
                ("GET", "/events"),
                ("POST", "/cancel"),
                ("POST", "/retry"),
            ):
                reply = client.request(method, f"/api/v1/jobs/{other['id']}{path}")
                assert reply.status_code == 404, (method, path)
        assert a.get(f"/api/v1/jobs/{job_a['id']}").status_code == 200
        # A same-tenant key with read scope sees tenant A's job.
    with api.client("reader") as reader:
        assert reader.get(f"/api/v1/jobs/{job_a['id']}").status_code == 200
    with api.client("admin") as admin:
        assert admin.get(f"/api/v1/jobs/{job_a['id']}").status_code == 200
        assert admin.get(f"/api/v1/jobs/{job_b['id']}").status_code == 200
    with api.client("b") as b:

        def listed() -> bool:
            items = b.get("/api/v1/jobs", params={"limit": 500}).json()["items"]
            return any(j["id"] == job_b["id"] for j in items) and all(
                j["tenant"] == "tenant-b" for j in items
            )

        wait_until(listed, timeout=30, what="tenant B's listing")


def test_a_revoked_key_stops_working(api: Api) -> None:
    store = open_store(api.app.settings)
    try:
        new = apikeys.create_key(store.engine, "tenant-a", ["read"])
        with api.client(None) as http:
            headers = {"Authorization": f"Bearer {new.secret}"}
            assert http.get("/api/v1/queues", headers=headers).status_code == 200
            apikeys.revoke_key(store.engine, new.info.id)
            wait_until(
                lambda: http.get("/api/v1/queues", headers=headers).status_code == 401,
                timeout=10,
                what="revocation took effect",
            )
        listed = {k.id: k for k in apikeys.list_keys(store.engine, "tenant-a")}
        assert listed[new.info.id].revoked_at is not None
        assert all(not hasattr(k, "secret") for k in listed.values())
    finally:
        store.close()
