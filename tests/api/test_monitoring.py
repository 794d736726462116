"""Queues, workers, job types, batches, monitoring shapes, health, metrics and OpenAPI."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from conveyor import keys
from conveyor.testing import wait_until
from tests.api.conftest import Api


def test_job_types_list_queue_limits_and_schema(api: Api) -> None:
    with api.client() as http:
        types = {t["name"]: t for t in http.get("/api/v1/job-types").json()}
    sleep = types["diag.sleep"]
    assert sleep["queue"] == "processing" and sleep["retries"] == 0
    assert set(sleep["input_schema"]["properties"]) == {"seconds", "steps"}


def test_queues_per_priority_level_and_the_seed_alias(api: Api) -> None:
    with api.client() as http:
        overview = http.get("/api/v1/queues").json()
        alias = http.get("/api/v1/generate/queue/status").json()
    names = [q["name"] for q in overview["queues"]]
    assert (names[0] == "critical" and "dead-letter" in names) or "processing" in names
    processing = next(q for q in overview["queues"] if q["name"] == "processing")
    assert set(processing["levels"]) == {str(n) for n in range(11)}
    assert processing["consumers"] >= 2 and processing["workers"] >= 1
    assert [q["name"] for q in alias["queues"]] == names
    assert {"total", "delayed", "reserved"} <= set(overview)


def test_queue_reports_its_oldest_message_age(api: Api) -> None:
    # The critical queue has no consumer in this package: messages stay there.
    with api.client() as http:
        http.post("/api/v1/jobs", json={"type": "diag.noop", "queue": "critical"})
        critical = next(
            q for q in http.get("/api/v1/queues").json()["queues"] if q["name"] == "critical"
        )
    assert critical["length"] >= 1 and critical["oldest_age_s"] is not None
    assert critical["consumers"] == 0


def test_workers_list_the_live_worker(api: Api) -> None:
    with api.client() as http:
        workers = http.get("/api/v1/workers").json()
    assert len(workers) == 1
    worker = workers[0]
    assert worker["profile"] == "processing" and worker["concurrency"] == 2
    assert {"hostname", "queues", "active", "processed", "last_heartbeat"} <= set(worker)


def test_batch_counts_reach_all_succeeded(api: Api) -> None:
    jobs = [{"type": "diag.noop"} for _ in range(4)] + [
        {"type": "diag.flaky", "payload": {"fail_times": 1, "permanent": True}}
    ]
    with api.client() as http:
        reply = http.post("/api/v1/batches", json={"jobs": jobs})
        assert reply.status_code == 202, reply.text
        batch = reply.json()
        assert batch["total"] == 5 and len(batch["job_ids"]) == 5

        def finished() -> dict | None:
            body = http.get(f"/api/v1/batches/{batch['id']}").json()
            return body if body["percent"] == 100.0 else None

        done = wait_until(finished, timeout=30, what="batch finished")
        assert (done["succeeded"], done["failed"], done["queued"], done["running"]) == (4, 1, 0, 0)
        job = http.get(f"/api/v1/jobs/{batch['job_ids'][0]}").json()
        assert job["batch_id"] == batch["id"]
    with api.client("b") as other:
        assert other.get(f"/api/v1/batches/{batch['id']}").status_code == 404
    # Once the live record has expired, the counts come from the job store.
    api.app.redis.delete(keys.batch(batch["id"]), keys.batch_jobs(batch["id"]))
    with api.client() as http:

        def stored() -> dict | None:
            reply = http.get(f"/api/v1/batches/{batch['id']}")
            body = reply.json() if reply.status_code == 200 else None
            return body if body and body["succeeded"] == 4 and body["failed"] == 1 else None

        assert wait_until(stored, timeout=30, what="batch counted from the store")["total"] == 5


def test_batch_is_validated_all_or_nothing(api: Api) -> None:
    jobs = [
        {"type": "diag.noop"},
        {"type": "diag.sleep", "payload": {"seconds": "long"}},
        {"type": "nope"},
    ]
    before = api.app.redis.llen("processing")
    with api.client() as http:
        reply = http.post("/api/v1/batches", json={"jobs": jobs})
    assert reply.status_code == 422
    fields = {e["field"] for e in reply.json()["errors"]}
    assert fields == {"jobs.1.payload.seconds", "jobs.2.type"}
    assert api.app.redis.llen("processing") == before


def test_monitoring_endpoint_shapes(api: Api) -> None:
    with api.client() as http:
        # Let the recorder store something to report on.
        job = http.post("/api/v1/jobs", json={"type": "diag.noop"}).json()
        wait_until(
            lambda: any(
                j["id"] == job["id"] and j["status"] == "succeeded"
                for j in http.get("/api/v1/jobs", params={"limit": 500}).json()["items"]
            ),
            timeout=30,
            what="recorded",
        )
        health = http.get("/api/v1/monitoring/tasks/health").json()
        assert health["status"] in ("ok", "degraded", "down")
        assert {"broker", "store", "recorder", "workers"} <= set(health["checks"])
        assert health["checks"]["broker"]["status"] == "ok" and health["workers"] == 1
        metrics = http.get("/api/v1/monitoring/tasks/metrics").json()
        assert set(metrics["windows"]) == {"1m", "5m", "15m"}
        assert metrics["counts"]["succeeded"] >= 1
        assert {"throughput_per_min", "failure_rate"} <= set(metrics["windows"]["1m"])
        dist = http.get("/api/v1/monitoring/tasks/distribution").json()
        assert dist["by_type"]["diag.noop"] >= 1 and dist["by_queue"]["processing"] >= 1
        assert dist["by_worker"]
        perf = http.get("/api/v1/monitoring/tasks/performance").json()
        noop = perf["by_type"]["diag.noop"]
        assert noop["run_s"]["p50"] is not None and noop["wait_s"]["count"] >= 1
        stalled = http.get("/api/v1/monitoring/tasks/stalled").json()
        assert stalled["count"] == 0 and stalled["jobs"] == []
        resources = http.get("/api/v1/monitoring/resources").json()
        assert resources["hosts"][0]["cpu_count"] >= 1 and len(resources["workers"]) == 1
    with api.client("admin") as admin:
        cleanup = admin.post("/api/v1/monitoring/tasks/cleanup").json()
        assert {"retention", "stalled", "requeued"} <= set(cleanup)
        assert admin.get("/api/v1/scaling").status_code == 200
        assert admin.get("/api/v1/dead-letters").status_code == 200


def test_health_ready_and_prometheus_metrics(api: Api) -> None:
    with api.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "celery_task_sent",
        "celery_task_succeeded",
        "celery_task_failed",
        "celery_task_runtime",
        "celery_queue_length",
        "celery_worker_up",
        "conveyor_queue_length",
        "conveyor_workers",
    ):
        assert name in families, name
    sent = [s for s in families["celery_task_sent"].samples if s.name.endswith("_total")]
    assert sent and set(sent[0].labels) == {"name", "hostname", "queue_name"}
    levels = {s.labels["priority"] for s in families["conveyor_queue_length"].samples}
    assert levels == {str(n) for n in range(11)}


def test_openapi_lists_every_endpoint_and_payload_schema(api: Api) -> None:
    with api.client(None) as http:
        doc = http.get("/openapi.json").json()
    paths = set(doc["paths"])
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/events",
        "/api/v1/batches",
        "/api/v1/queues",
        "/api/v1/generate/queue/status",
        "/api/v1/workers",
        "/api/v1/dead-letters",
        "/api/v1/monitoring/tasks/health",
        "/api/v1/monitoring/resources",
        "/metrics",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    assert "payload:diag.sleep" in doc["components"]["schemas"]
