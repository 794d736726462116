"""The HTTP contract's edges: bodies that are not JSON, booleans as numbers, methods
a path does not serve, and the endpoints that need no key."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

NOT_A_JSON_OBJECT = [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'{"type": "diag.noop"}', "text/plain"),
]


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/batches"])
@pytest.mark.parametrize(("body", "content_type"), NOT_A_JSON_OBJECT)
def test_a_body_that_is_not_a_json_object_gets_one_answer(
    api: Api, path: str, body: bytes, content_type: str
) -> None:
    with api.client("a") as http:
        reply = http.post(path, content=body, headers={"Content-Type": content_type})
    assert reply.status_code == 422, reply.text
    assert [e["type"] for e in reply.json()["errors"]] == ["json_invalid"]
    assert reply.json()["detail"].startswith("request body is not a JSON object")


@pytest.mark.parametrize(
    "submission",
    [
        {"type": "diag.noop", "priority": True},
        {"type": "diag.noop", "delay": False},
        {"type": "diag.sleep", "payload": {"seconds": True}},
        {"type": "diag.sleep", "payload": {"seconds": 0.1, "steps": True}},
    ],
)
def test_booleans_are_not_numbers(api: Api, submission: dict) -> None:
    with api.client("a") as http:
        reply = http.post("/api/v1/jobs", json=submission)
    assert reply.status_code == 422, reply.text


def test_payload_booleans_where_booleans_belong_still_pass(api: Api) -> None:
    with api.client("a") as http:
        reply = http.post(
            "/api/v1/jobs",
            json={"type": "diag.flaky", "payload": {"fail_times": 0, "permanent": True}},
        )
    assert reply.status_code == 202, reply.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/api/v1/jobs", "GET, POST"),
        ("DELETE", "/api/v1/jobs", "GET, POST"),
        ("PUT", "/metrics", "GET"),
        ("POST", "/api/v1/jobs/00000000-0000-4000-8000-000000000000", "GET"),
    ],
)
def test_a_method_the_path_does_not_serve_is_405_with_allow(
    api: Api, method: str, path: str, allowed: str
) -> None:
    with api.client("a") as http:
        reply = http.request(method, path)
    assert reply.status_code == 405
    assert reply.headers["allow"] == allowed


def test_openapi_says_which_endpoints_need_no_key(api: Api) -> None:
    with api.client(None) as http:
        doc = http.get("/openapi.json").json()
        assert http.get("/metrics").status_code == 200
    assert doc["security"] == [{"bearer": []}]
    for path in ("/metrics", "/readyz", "/healthz"):
        assert doc["paths"][path]["get"]["security"] == [], path
    assert "security" not in doc["paths"]["/api/v1/jobs"]["post"]
    replay = doc["paths"]["/api/v1/dead-letters/replay"]["post"]
    assert "json_invalid" in replay["responses"]["422"]["description"]
