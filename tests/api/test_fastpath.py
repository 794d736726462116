"""``POST /api/v1/jobs`` has a fast path (pure ASGI); what it does not take, FastAPI answers.

These check that both paths answer alike: a key not yet in the auth cache (the
route), then the same key cached (the fast path); requests the fast path hands on
(bad JSON, another content type, field errors, no scope) get the route's answers.
"""

from __future__ import annotations

import json

from conveyor import apikeys
from conveyor.store import open_store
from tests.api.conftest import Api

SHAPE = {"id", "type", "status", "tenant", "tags", "deduplicated", "payload", "queue"}


def test_first_request_of_a_key_and_the_cached_ones_answer_alike(api: Api) -> None:
    store = open_store(api.app.settings)
    try:
        secret = apikeys.create_key(store.engine, "tenant-fast", ["submit", "read"]).secret
    finally:
        store.close()
    headers = {"Authorization": f"Bearer {secret}"}
    with api.client(None) as http:
        replies = [
            http.post(
                "/api/v1/jobs", headers=headers, json={"type": "diag.noop", "tags": [f"n{i}"]}
            )
            for i in range(3)
        ]
    for i, reply in enumerate(replies):
        assert reply.status_code == 202, reply.text
        assert reply.headers["content-type"] == "application/json"
        job = reply.json()
        assert set(job) >= SHAPE
        assert job["tenant"] == "tenant-fast" and job["tags"] == [f"n{i}"]
        assert job["deduplicated"] is False
    assert replies[0].json().keys() == replies[2].json().keys()


def test_requests_the_fast_path_hands_on_get_the_routes_answers(api: Api) -> None:
    with api.client() as http:
        http.post("/api/v1/jobs", json={"type": "diag.noop"})  # the key is now cached
        bad_json = http.post(
            "/api/v1/jobs", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert bad_json.status_code == 422
        assert bad_json.json()["errors"][0]["type"] == "json_invalid"
        fields = http.post("/api/v1/jobs", json={"type": "diag.noop", "priority": 11})
        assert fields.status_code == 422
        assert [e["field"] for e in fields.json()["errors"]] == ["priority"]
        payload = http.post("/api/v1/jobs", json={"type": "diag.sleep", "payload": {"seconds": -1}})
        assert payload.status_code == 422
        assert "payload.seconds" in {e["field"] for e in payload.json()["errors"]}
        unknown = http.post("/api/v1/jobs", json={"type": "no.such"})
        assert unknown.status_code == 422 and "diag.noop" in unknown.json()["known_types"]
        with_charset = http.post(
            "/api/v1/jobs",
            content=json.dumps({"type": "diag.noop"}).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert with_charset.status_code == 202
    with api.client("reader") as http:
        http.get("/api/v1/queues")  # cached, without the submit scope
        assert http.post("/api/v1/jobs", json={"type": "diag.noop"}).status_code == 403
    with api.client(None) as http:
        reply = http.post(
            "/api/v1/jobs", json={"type": "diag.noop"}, headers={"Authorization": "Bearer x"}
        )
        assert reply.status_code == 401 and reply.headers["WWW-Authenticate"] == "Bearer"
