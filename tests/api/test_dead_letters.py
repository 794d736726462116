"""Dead letters over HTTP: read per tenant, replay and purge as admin."""

from __future__ import annotations

from conveyor.testing import wait_until
from tests.api.conftest import Api


def _dead_job(api: Api) -> str:
    with api.client("a") as http:
        job = http.post(
            "/api/v1/jobs",
            json={"type": "diag.flaky", "payload": {"fail_times": 1, "permanent": True}},
        ).json()
        wait_until(
            lambda: http.get(f"/api/v1/dead-letters/{job['id']}").status_code == 200,
            timeout=30,
            what="dead letter recorded",
        )
    return str(job["id"])


def test_dead_letters_are_per_tenant_and_replayed_by_an_admin(api: Api) -> None:
    job_id = _dead_job(api)
    with api.client("a") as a:
        letter = a.get(f"/api/v1/dead-letters/{job_id}").json()
        assert letter["error_type"] == "PermanentError" and letter["tenant"] == "tenant-a"
        assert letter["payload"] == {"fail_times": 1, "permanent": True}
        assert job_id in [d["job_id"] for d in a.get("/api/v1/dead-letters").json()]
        assert a.post(f"/api/v1/dead-letters/{job_id}/replay").status_code == 403
    with api.client("b") as b:
        assert b.get(f"/api/v1/dead-letters/{job_id}").status_code == 404
        assert job_id not in [d["job_id"] for d in b.get("/api/v1/dead-letters").json()]
    with api.client("admin") as admin:
        replayed = admin.post(f"/api/v1/dead-letters/{job_id}/replay")
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["id"] != job_id
        assert admin.post(f"/api/v1/dead-letters/{job_id}/replay").status_code == 409


def test_admin_purges_a_dead_letter(api: Api) -> None:
    job_id = _dead_job(api)
    with api.client("admin") as admin:
        reply = admin.delete(f"/api/v1/dead-letters/{job_id}")
        assert reply.status_code == 200 and reply.json()["purged"] == [job_id]
        wait_until(
            lambda: admin.get(f"/api/v1/dead-letters/{job_id}").status_code == 404,
            timeout=30,
            what="dead letter purged",
        )


def test_unfiltered_bulk_replay_is_refused(api: Api) -> None:
    with api.client("admin") as admin:
        refused = admin.post("/api/v1/dead-letters/replay", json={})
        assert refused.status_code == 422, refused.text
        assert '"all": true' in refused.json()["detail"]
        scoped = admin.post("/api/v1/dead-letters/replay", json={"tenant": "nobody"})
        assert scoped.status_code == 200 and scoped.json() == {"replayed": {}, "refused": {}}
