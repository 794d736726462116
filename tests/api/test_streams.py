"""Live events: SSE to succeeded, resume with Last-Event-ID, and the WebSocket."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from websockets.sync.client import connect

from tests.api.conftest import Api


def read_sse(
    api: Api, job_id: str, last_event_id: str | None = None, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Read ``(id, event)`` frames from the SSE endpoint until it closes (or ``stop_after``)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    frames: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with (
        api.client() as http,
        http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("id:"):
                current["id"] = line[3:].strip()
            elif line.startswith("data:"):
                current["event"] = json.loads(line[5:].strip())
            elif line == "" and "event" in current:
                frames.append(current)
                current = {}
                if stop_after is not None and len(frames) >= stop_after:
                    break
    return frames


def test_sse_shows_state_then_progress_to_succeeded(api: Api) -> None:
    with api.client() as http:
        job = http.post(
            "/api/v1/jobs", json={"type": "diag.sleep", "payload": {"seconds": 0.6, "steps": 4}}
        ).json()
    frames = read_sse(api, job["id"])
    kinds = [f["event"]["type"] for f in frames]
    assert kinds[0] == "state" and kinds[-1] == "succeeded"
    progress = [f["event"]["progress"] for f in frames if f["event"]["type"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert len(progress) >= 3  # subscribed within the first step
    ids = [tuple(int(p) for p in f["id"].split("-")) for f in frames]
    assert ids == sorted(ids)


def test_last_event_id_resumes_without_loss_or_repeats(api: Api) -> None:
    with api.client() as http:
        # Delayed, so the stream is open before the first step even on a loaded machine.
        job = http.post(
            "/api/v1/jobs",
            json={"type": "diag.sleep", "payload": {"seconds": 1.0, "steps": 5}, "delay": 1.5},
        ).json()
    head = read_sse(api, job["id"], stop_after=2)  # the state and one live event, then drop
    rest = read_sse(api, job["id"], last_event_id=head[-1]["id"])
    assert rest and rest[0]["event"]["type"] != "state"
    events = [f["event"] for f in head[1:] + rest]
    progress = [e["progress"] for e in events if e["type"] == "progress"]
    assert progress == [20.0, 40.0, 60.0, 80.0, 100.0]  # every step once, in order
    assert events[-1]["type"] == "succeeded"
    # Resuming after the terminal event: nothing more, the stream closes at once.
    assert read_sse(api, job["id"], last_event_id=rest[-1]["id"]) == []


def test_malformed_last_event_id_is_422(api: Api) -> None:
    with api.client() as http:
        job = http.post("/api/v1/jobs", json={"type": "diag.noop"}).json()
        reply = http.get(f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "abc"})
    assert reply.status_code == 422


def test_websocket_streams_the_same_events(api: Api) -> None:
    with api.client() as http:
        job = http.post(
            "/api/v1/jobs", json={"type": "diag.sleep", "payload": {"seconds": 0.4, "steps": 2}}
        ).json()
    url = api.url.replace("http://", "ws://") + f"/api/v1/jobs/{job['id']}/ws"
    messages = []
    with connect(url, additional_headers={"Authorization": f"Bearer {api.keys['a']}"}) as ws:
        for raw in ws:
            messages.append(json.loads(raw))
    kinds = [m["event"]["type"] for m in messages]
    assert kinds[0] == "state" and kinds[-1] == "succeeded"
    assert all("id" in m for m in messages)


def test_websocket_refuses_without_a_key_or_for_another_tenant(api: Api) -> None:
    with api.client() as http:
        job = http.post("/api/v1/jobs", json={"type": "diag.noop"}).json()
    url = api.url.replace("http://", "ws://") + f"/api/v1/jobs/{job['id']}/ws"
    for headers, code in (({}, 4401), ({"Authorization": f"Bearer {api.keys['b']}"}, 4404)):
        with connect(url, additional_headers=headers) as ws:
            with contextlib.suppress(Exception):
                ws.recv(timeout=10)
            assert ws.close_code == code
