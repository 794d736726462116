"""Dead-letter alerts: a JSON POST to ``CONVEYOR_ALERT_WEBHOOK_URL``.

A job that dies on the ``critical`` queue, or on any queue listed in
``CONVEYOR_ALERT_QUEUES``, raises one notification. It is sent by the
``conveyor.dead_letter`` task on the ``dead-letter`` queue (the monitoring
worker), never by the worker that ran the job, so a slow or broken webhook
never holds up job processing. A failed POST is retried with backoff up to
``CONVEYOR_ALERT_RETRIES`` times.

The body (one JSON object; ``text`` makes Slack-style incoming webhooks show it
as is)::

    {"event": "job.dead_lettered", "job_id": "…", "job_type": "video.render",
     "queue": "critical", "priority": 10, "error_type": "TransientError",
     "error_message": "…", "attempt": 3, "deliveries": 1, "worker": "…",
     "failed_at": 1763731200.5, "replay": "conveyor dlq replay …", "text": "…"}

Delivery is at least once: a receiver that must not see one dead letter twice
dedupes on ``job_id``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from conveyor.settings import Settings, mask_url
from conveyor.topology import DEAD_LETTER

#: The queue whose dead letters always raise an alert.
CRITICAL_QUEUE = "critical"
#: Longest wait between two tries of one alert.
MAX_RETRY_DELAY_S = 300.0

_USER_AGENT = "conveyor-alerts/1"


class AlertDeliveryError(Exception):
    """The webhook could not be reached or did not answer 2xx."""


def should_alert(settings: Settings, queue: str | None) -> bool:
    """Whether a dead letter from ``queue`` raises an alert."""
    if queue is None or queue == DEAD_LETTER:
        return False
    return queue == CRITICAL_QUEUE or queue in settings.alert_queues


def alert_body(dead_letter: dict[str, Any]) -> dict[str, Any]:
    """The JSON object POSTed for one dead letter (see the module docstring)."""
    job_id = str(dead_letter.get("job_id"))
    job_type = dead_letter.get("type")
    queue = dead_letter.get("queue")
    error_type = dead_letter.get("error_type") or "Error"
    message = str(dead_letter.get("error_message") or "")
    if len(message) > 2000:
        message = message[:2000] + "…"
    return {
        "event": "job.dead_lettered",
        "job_id": job_id,
        "job_type": job_type,
        "queue": queue,
        "priority": dead_letter.get("priority"),
        "error_type": error_type,
        "error_message": message,
        "attempt": dead_letter.get("attempt"),
        "deliveries": dead_letter.get("deliveries"),
        "worker": dead_letter.get("worker"),
        "failed_at": dead_letter.get("failed_at"),
        "replay": f"conveyor dlq replay {job_id}",
        "text": (
            f"Conveyor: {job_type} job {job_id} failed on queue {queue} "
            f"after {int(dead_letter.get('attempt') or 0) + 1} attempt(s): "
            f"{error_type}: {message[:300]}"
        ),
    }


def retry_delay(retries_done: int) -> float:
    """Seconds before the next try of an alert: 1, 2, 4 … capped at 5 minutes."""
    return float(min(MAX_RETRY_DELAY_S, 2.0 ** min(retries_done, 16)))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a webhook that moved is a configuration error to surface."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_webhook_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) webhook URL: {mask_url(url)}")


def post_json(url: str, body: dict[str, Any], *, timeout_s: float = 10.0) -> int:
    """POST ``body`` as JSON to ``url``; return the HTTP status.

    Raises :class:`AlertDeliveryError` for a connection problem, a timeout, a
    redirect or any status outside 2xx (the message names the URL, password
    masked).
    """
    check_webhook_url(url)
    data = json.dumps(body, separators=(",", ":"), default=str).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": _USER_AGENT},
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(
            f"webhook {mask_url(url)} answered {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertDeliveryError(f"webhook {mask_url(url)} unreachable: {reason}") from None
    if not 200 <= status < 300:
        raise AlertDeliveryError(f"webhook {mask_url(url)} answered {status}")
    return status
