"""``POST /api/v1/jobs`` has a fast path (pure ASGI); what it does not take, FastAPI answers.

These check that both paths answer alike: a key's first request and its cached
ones; a ``+json`` content type (the route's alone) and plain JSON (the fast path);
requests the fast path hands on (bad JSON, another content type, field errors, no
scope, a body over the limit) get the route's answers. The fast path answers with
the state the submit wrote, not read back: it must equal the job's live state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from conveyor.api.context import ApiContext
from conveyor.errors import Unauthenticated
from conveyor.services import apikeys
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


def test_the_answer_without_a_read_back_is_the_jobs_live_state(api: Api) -> None:
    # "critical" has no worker here: the job stays as it was written.
    submission = {
        "type": "diag.sleep",
        "payload": {"seconds": 0.01},  # its model fills in the other fields
        "queue": "critical",
        "priority": 5,
        "tags": ["fast", "x=1"],
    }
    body = json.dumps(submission).encode()
    with api.client() as http:
        fast = http.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        # FastAPI also takes a +json media type; the fast path leaves it to the route.
        route = http.post(
            "/api/v1/jobs", content=body, headers={"Content-Type": "application/vnd.conveyor+json"}
        )
        assert fast.status_code == route.status_code == 202, (fast.text, route.text)
        for reply in (fast, route):
            live = http.get(f"/api/v1/jobs/{reply.json()['id']}")
            assert live.status_code == 200
            assert reply.json() == {**live.json(), "deduplicated": False}
    answered = fast.json()
    assert answered["status"] == "queued" and answered["queue"] == "critical"
    assert answered["payload"]["seconds"] == 0.01 and len(answered["payload"]) > 1
    same = {k for k in answered if k not in ("id", "created_at")}
    assert {k: answered[k] for k in same} == {k: route.json()[k] for k in same}


def test_a_streamed_body_over_the_limit_gets_the_routes_answer(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"type": "diag.noop", "payload": {"pad": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}}'

    with api.client() as http:
        http.post("/api/v1/jobs", json={"type": "diag.noop"})  # the key is cached
        replies = [
            http.post("/api/v1/jobs", content=chunks(), headers={"Content-Type": content_type})
            for content_type in ("application/json", "application/vnd.conveyor+json")
        ]
    fast, route = replies
    assert fast.status_code == route.status_code >= 400
    assert fast.json() == route.json()


def test_concurrent_requests_with_an_uncached_key_share_one_lookup(api: Api) -> None:
    store = open_store(api.app.settings)
    try:
        secret = apikeys.create_key(store.engine, "tenant-herd", ["submit"]).secret
    finally:
        store.close()
    ctx = ApiContext(api.app)
    looked_up: list[str] = []
    lookup = ctx.authenticator._lookup

    def counted(token: str) -> apikeys.KeyInfo | None:
        looked_up.append(token)
        return lookup(token)

    ctx.authenticator._lookup = counted

    async def many(header: str) -> list[object]:
        calls = [ctx.principal_async(header) for _ in range(20)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        known = asyncio.run(many(f"Bearer {secret}"))
        assert len(looked_up) == 1
        assert {getattr(p, "tenant", None) for p in known} == {"tenant-herd"}
        unknown = asyncio.run(many("Bearer not-a-key"))
        assert len(looked_up) == 2
        assert all(isinstance(e, Unauthenticated) for e in unknown)
        with pytest.raises(Unauthenticated):
            asyncio.run(ctx.principal_async(None))
    finally:
        if ctx._store is not None:
            ctx._store.close()
