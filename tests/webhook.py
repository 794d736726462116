"""A real local HTTP server that records webhook POSTs (for the alert tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Records every POST; answers each with the next status of ``statuses`` (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type"),
                            "body": json.loads(raw or b"null"),
                            "status": status,
                        }
                    )
                if 300 <= status < 400:
                    self.send_response(status)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/conveyor"

    def delivered(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The bodies answered with 2xx (for one job when ``job_id`` is given)."""
        with self.lock:
            return [
                r["body"]
                for r in self.requests
                if 200 <= r["status"] < 300 and (job_id is None or r["body"]["job_id"] == job_id)
            ]

    def received(self, job_id: str) -> list[dict[str, Any]]:
        """Every request about ``job_id``, whatever it was answered."""
        with self.lock:
            return [r for r in self.requests if r["body"].get("job_id") == job_id]


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[WebhookReceiver]:
    """A :class:`WebhookReceiver` serving in a thread for the duration of the block."""
    receiver = WebhookReceiver(statuses)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=5)
