"""celery-exporter's metric names and the summed backlog for KEDA, served by the API."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from conveyor.testing import wait_until
from tests.api.conftest import Api


def test_backlog_endpoint_needs_a_key_and_sums_the_queues_asked_for(api: Api) -> None:
    with api.client(None) as anonymous:
        assert anonymous.get("/api/v1/queues/backlog").status_code == 401
    with api.client() as http:
        whole = http.get("/api/v1/queues/backlog")
        assert whole.status_code == 200, whole.text
        body = whole.json()
        assert {q["queue"] for q in body["queues"]} == set(api.app.topology.queues)
        assert body["backlog"] == sum(q["backlog"] for q in body["queues"])
        two = http.get("/api/v1/queues/backlog", params={"queue": ["generation-high", "batch"]})
        assert [q["queue"] for q in two.json()["queues"]] == ["generation-high", "batch"]
        assert http.get("/api/v1/queues/backlog", params={"queue": "nope"}).status_code == 404


def test_metrics_carry_celery_exporter_names_and_the_backlog(api: Api) -> None:
    job = api.app.submit("diag.noop", {})
    assert job.wait(timeout=60).status == "succeeded"
    refused = str(uuid.uuid4())
    api.app.celery.send_task("billing.no_such_job", kwargs={}, task_id=refused, queue="processing")
    wait_until(
        lambda: (
            api.app.get_job(refused).state().status == "failed"
            if api.app.redis.exists(f"conveyor:job:{refused}")
            else False
        ),
        timeout=60,
        what="the unknown job type recorded as failed",
    )

    def families() -> dict[str, object]:
        with api.client(None) as http:
            text = http.get("/metrics").text
        return {f.name: f for f in text_string_to_metric_families(text)}

    def rejected_counted() -> bool:
        family = families().get("celery_task_rejected")
        samples = getattr(family, "samples", [])
        return any(s.labels.get("name") == "billing.no_such_job" for s in samples)

    wait_until(rejected_counted, timeout=30, what="celery_task_rejected_total counted")
    found = families()
    for name in (
        "celery_task_received",
        "celery_task_rejected",
        "celery_worker_tasks_active",
        "celery_task_queue_wait_time",
        "celery_active_worker_count",
        "celery_active_process_count",
        "conveyor_queue_backlog",
        "conveyor_queue_reserved",
    ):
        assert name in found, name
    workers = [s for s in found["celery_active_worker_count"].samples]  # type: ignore[attr-defined]
    assert any(s.labels["queue_name"] == "processing" and s.value >= 1 for s in workers)
