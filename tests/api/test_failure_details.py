"""API clients get a failure's type and message; tracebacks are for admins and the CLI."""

from __future__ import annotations

import uuid

from conveyor.events import new_event
from conveyor.testing import wait_until
from tests.api.conftest import Api
from tests.api.test_streams import read_sse


def _failed_job(api: Api) -> str:
    with api.client("a") as http:
        job = http.post(
            "/api/v1/jobs",
            json={"type": "diag.flaky", "payload": {"fail_times": 1, "permanent": True}},
        ).json()
        wait_until(
            lambda: http.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "failed",
            timeout=30,
            what="job failed",
        )
    return str(job["id"])


def test_tenants_see_no_traceback_admins_do(api: Api) -> None:
    job_id = _failed_job(api)
    with api.client("a") as http:
        error = http.get(f"/api/v1/jobs/{job_id}").json()["error"]
        assert error["type"] == "PermanentError" and error["message"]
        assert error["traceback"] is None
        listed = http.get("/api/v1/jobs", params={"status": "failed"}).json()["items"]
        assert all(job["error"]["traceback"] is None for job in listed if job["error"])
        wait_until(
            lambda: http.get(f"/api/v1/dead-letters/{job_id}").status_code == 200,
            timeout=30,
            what="dead letter recorded",
        )
        letter = http.get(f"/api/v1/dead-letters/{job_id}").json()
        assert letter["error_type"] == "PermanentError" and letter["traceback"] is None
    frames = read_sse(api, job_id)
    assert "Traceback" not in str(frames)
    with api.client("admin") as admin:
        assert "Traceback" in admin.get(f"/api/v1/jobs/{job_id}").json()["error"]["traceback"]
        assert "Traceback" in admin.get(f"/api/v1/dead-letters/{job_id}").json()["traceback"]


def _job_failing_with(api: Api, error_type: str, message: str) -> str:
    job_id = str(uuid.uuid4())
    event = new_event(
        "failed",
        job_id,
        "diag.noop",
        "processing",
        error_type=error_type,
        error_message=message,
        traceback=f"Traceback (most recent call last):\n{error_type}: {message}",
    )
    fields = {
        "tenant": "tenant-a",
        "error_type": error_type,
        "error_message": message,
        "traceback": event["traceback"],
    }
    api.app.event_writer().emit(event, fields=fields)
    return job_id


def test_a_missing_file_and_a_forbidden_one_answer_alike(api: Api) -> None:
    missing = _job_failing_with(
        api, "FileNotFoundError", "[Errno 2] No such file or directory: '/srv/none'"
    )
    forbidden = _job_failing_with(api, "PermissionError", "[Errno 13] Permission denied: '/root/x'")
    with api.client("a") as http:
        one = http.get(f"/api/v1/jobs/{missing}").json()["error"]
        two = http.get(f"/api/v1/jobs/{forbidden}").json()["error"]
    assert one == two and one["type"] == "FileAccessError"
    assert "/srv/none" not in str(one) and "/root/x" not in str(two)
    events = [f["event"] for f in read_sse(api, missing)] + [
        f["event"] for f in read_sse(api, forbidden)
    ]
    assert "Errno" not in str(events)
    with api.client("admin") as admin:
        assert admin.get(f"/api/v1/jobs/{forbidden}").json()["error"]["type"] == "PermissionError"
