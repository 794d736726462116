"""Dead-letter alerts: which queues alert, the JSON body, and delivery to a real HTTP server."""

from __future__ import annotations

import socket

import pytest

from conveyor import Settings
from conveyor.services.alerts import (
    AlertDeliveryError,
    alert_body,
    post_json,
    retry_delay,
    should_alert,
)
from tests.webhook import webhook_receiver

LETTER = {
    "job_id": "0b9f6c1e-0000-4000-8000-000000000001",
    "type": "video.render",
    "queue": "critical",
    "priority": 10,
    "error_type": "TransientError",
    "error_message": "encoder crashed",
    "attempt": 3,
    "deliveries": 1,
    "worker": "critical-1@host",
    "failed_at": 1763731200.5,
}


def test_critical_and_listed_queues_alert() -> None:
    settings = Settings(alert_queues=("generation",))
    assert should_alert(settings, "critical") and should_alert(settings, "generation")
    assert not should_alert(settings, "processing") and not should_alert(settings, None)
    assert not should_alert(settings, "dead-letter")


def test_the_body_names_the_job_and_how_to_replay_it() -> None:
    body = alert_body(LETTER)
    assert body["event"] == "job.dead_lettered" and body["job_id"] == LETTER["job_id"]
    assert body["job_type"] == "video.render" and body["queue"] == "critical"
    assert body["attempt"] == 3 and body["error_type"] == "TransientError"
    assert body["replay"] == f"conveyor dlq replay {LETTER['job_id']}"
    assert "4 attempt(s)" in body["text"] and "encoder crashed" in body["text"]
    long = alert_body(dict(LETTER, error_message="x" * 5000))
    assert len(long["error_message"]) < 2100


def test_retry_delays_double_up_to_five_minutes() -> None:
    assert [retry_delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert retry_delay(9) == 300.0 and retry_delay(1000) == 300.0


def test_post_json_delivers_to_a_real_server() -> None:
    with webhook_receiver() as hook:
        assert post_json(hook.url, alert_body(LETTER)) == 200
    [request] = hook.requests
    assert request["path"] == "/hooks/conveyor"
    assert request["content_type"] == "application/json"
    assert request["body"]["job_id"] == LETTER["job_id"]


def test_post_json_fails_on_errors_and_redirects() -> None:
    with webhook_receiver([503, 302]) as hook:
        with pytest.raises(AlertDeliveryError, match="answered 503"):
            post_json(hook.url, {"job_id": "x"})
        with pytest.raises(AlertDeliveryError, match="302"):
            post_json(hook.url, {"job_id": "x"})
        assert len(hook.requests) == 2  # the redirect was not followed


def test_post_json_fails_fast_when_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AlertDeliveryError, match="unreachable") as caught:
        post_json(f"http://user:secret@127.0.0.1:{port}/x", {}, timeout_s=2)
    assert "secret" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ValueError, match="http"):
        post_json("file:///etc/passwd", {})
