"""Jobs over HTTP: submit, validation, idempotency, limits, cancel, retry, result, list."""

from __future__ import annotations

import time
from typing import Any

from conveyor.testing import wait_until
from tests.api.conftest import Api


def _finished(api: Api, job_id: str, role: str = "a") -> dict:
    with api.client(role) as http:

        def done() -> dict | None:
            body = http.get(f"/api/v1/jobs/{job_id}").json()
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None

        return wait_until(done, timeout=30, what=f"job {job_id} finished")


def test_submit_returns_202_and_the_job_runs(api: Api) -> None:
    with api.client() as http:
        reply = http.post("/api/v1/jobs", json={"type": "diag.noop", "tags": ["smoke"]})
        assert reply.status_code == 202, reply.text
        job = reply.json()
        assert job["status"] in ("queued", "started", "succeeded")
        assert job["tenant"] == "tenant-a" and job["tags"] == ["smoke"]
        assert job["deduplicated"] is False
    assert _finished(api, job["id"])["status"] == "succeeded"
    with api.client() as http:
        assert http.get(f"/api/v1/jobs/{job['id']}/result").json()["result"] is None


def test_invalid_payload_is_422_with_field_errors_and_nothing_enqueued(api: Api) -> None:
    depth_before = api.app.redis.llen("processing")
    with api.client() as http:
        reply = http.post(
            "/api/v1/jobs", json={"type": "diag.sleep", "payload": {"seconds": -1, "steps": "x"}}
        )
    assert reply.status_code == 422
    fields = {e["field"] for e in reply.json()["errors"]}
    assert fields == {"payload.seconds", "payload.steps"}
    assert api.app.redis.llen("processing") == depth_before


def test_unknown_payload_field_is_422_naming_it(api: Api) -> None:
    with api.client() as http:
        reply = http.post("/api/v1/jobs", json={"type": "diag.sleep", "payload": {"secs": 3}})
        assert reply.status_code == 422, reply.text
        assert [e["field"] for e in reply.json()["errors"]] == ["payload.secs"]
        assert http.get("/api/v1/jobs", params={"status": "bogus"}).status_code == 422


def test_unknown_type_is_422_naming_the_known_types(api: Api) -> None:
    with api.client() as http:
        reply = http.post("/api/v1/jobs", json={"type": "no.such", "payload": {}})
    assert reply.status_code == 422
    assert "diag.sleep" in reply.json()["known_types"]


def test_bad_request_fields_are_422(api: Api) -> None:
    with api.client() as http:
        for body in (
            {"type": "diag.noop", "priority": 11},
            {"type": "diag.noop", "queue": "nope"},
            {"type": "diag.noop", "surprise": 1},
            {"type": "diag.noop", "delay": -3},
        ):
            assert http.post("/api/v1/jobs", json=body).status_code == 422, body
        assert http.get("/api/v1/jobs/not-a-uuid").status_code == 422


def test_body_over_one_mebibyte_is_413(api: Api) -> None:
    blob = "x" * (1024 * 1024 + 10)
    with api.client() as http:
        reply = http.post("/api/v1/jobs", json={"type": "diag.noop", "payload": {"x": blob}})
    assert reply.status_code == 413


def test_same_idempotency_key_returns_the_live_job_with_200(api: Api) -> None:
    body = {"type": "diag.sleep", "payload": {"seconds": 0.5}, "idempotency_key": "order-17"}
    with api.client() as http:
        first = http.post("/api/v1/jobs", json=body)
        second = http.post("/api/v1/jobs", json=body)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["deduplicated"] is True
    # Keys are per tenant: the same key from tenant B is a new job.
    with api.client("b") as http:
        other = http.post("/api/v1/jobs", json=body)
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]


def test_cancel_a_scheduled_job_then_409_on_a_second_cancel(api: Api) -> None:
    with api.client() as http:
        job = http.post("/api/v1/jobs", json={"type": "diag.noop", "delay": 60}).json()
        assert job["status"] == "scheduled"
        reply = http.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert reply.status_code == 200 and reply.json()["cancelled"] is True
        assert reply.json()["job"]["status"] == "cancelled"
        assert http.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 409
        assert http.get(f"/api/v1/jobs/{job['id']}/result").status_code == 409


def test_retry_a_failed_job_as_a_new_linked_job(api: Api) -> None:
    with api.client() as http:
        job = http.post(
            "/api/v1/jobs",
            json={"type": "diag.flaky", "payload": {"fail_times": 1, "permanent": True}},
        ).json()
    assert _finished(api, job["id"])["status"] == "failed"
    with api.client() as http:
        retried = http.post(f"/api/v1/jobs/{job['id']}/retry")
        assert retried.status_code == 202, retried.text
        new = retried.json()
        assert new["id"] != job["id"] and new["replay_of"] == job["id"]
        assert new["tenant"] == "tenant-a"
        waiting = http.post("/api/v1/jobs", json={"type": "diag.noop", "delay": 60}).json()
        assert http.post(f"/api/v1/jobs/{waiting['id']}/retry").status_code == 409


def test_list_jobs_newest_first_with_a_keyset_cursor(api: Api) -> None:
    with api.client("b") as http:
        ids = [
            http.post("/api/v1/jobs", json={"type": "diag.noop", "tags": ["list"]}).json()["id"]
            for _ in range(3)
        ]

        def listed() -> list[str] | None:
            page = http.get("/api/v1/jobs", params={"type": "diag.noop", "limit": 100}).json()
            found = [j["id"] for j in page["items"]]
            return found if all(i in found for i in ids) else None

        wait_until(listed, timeout=30, what="recorder stored the jobs")
        first = http.get("/api/v1/jobs", params={"type": "diag.noop", "limit": 2}).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        second = http.get(
            "/api/v1/jobs", params={"type": "diag.noop", "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        seen = [j["id"] for j in first["items"] + second["items"]]
        assert len(set(seen)) == len(seen)
        created = [j["created_at"] for j in first["items"] + second["items"]]
        assert created == sorted(created, reverse=True)
        assert all(j["tenant"] == "tenant-b" for j in first["items"] + second["items"])
        assert http.get("/api/v1/jobs", params={"cursor": "!!"}).status_code == 422


def test_submissions_past_the_rate_limit_get_429_with_retry_after(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Bursts of concurrent requests: one client in a row may not reach the limit's rate
    # on a loaded machine.
    with api.client("burst") as http, ThreadPoolExecutor(8) as pool:
        limited: list[Any] = []
        deadline = time.monotonic() + 20
        while not limited and time.monotonic() < deadline:
            replies = list(
                pool.map(lambda _: http.post("/api/v1/jobs", json={"type": "diag.noop"}), range(48))
            )
            limited = [r for r in replies if r.status_code == 429]
        assert limited, "no submission was refused within 20 s"
        assert int(limited[0].headers["Retry-After"]) >= 1
