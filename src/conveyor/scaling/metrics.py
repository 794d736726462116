"""The backlog in the forms Kubernetes autoscalers read.

* :func:`prometheus_text` — ``conveyor_queue_backlog{queue="…"}`` (and its parts)
  for Prometheus, so HPA (through prometheus-adapter) or KEDA's ``prometheus``
  scaler can scale on it;
* :func:`backlog_json` — ``{"queue": …, "backlog": …}`` per queue, the small
  answer KEDA's ``metrics-api`` scaler polls (``valueLocation: backlog``).

The HTTP API serves both (``/metrics`` and ``GET /api/v1/scaling``); the
worker manager can also serve them itself on ``CONVEYOR_AUTOSCALE_METRICS_PORT``
(``/metrics``, ``/backlog`` and ``/backlog/{queue}``), which needs no API.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from conveyor.scaling.backlog import measure

if TYPE_CHECKING:
    from conveyor.app import Conveyor

_PARTS = ("backlog", "waiting", "reserved", "running", "due_soon")


def backlog_json(app: Conveyor) -> dict[str, dict[str, Any]]:
    """Queue name → its backlog figures (``backlog`` is what to scale on)."""
    measured = measure(app.redis, app.topology, app.settings.autoscale_poll_s)
    return {name: entry.as_dict() for name, entry in measured.items()}


def prometheus_text(app: Conveyor) -> str:
    """The backlog of every queue in Prometheus' text format."""
    lines = []
    for part in _PARTS:
        metric = "conveyor_queue_backlog" if part == "backlog" else f"conveyor_queue_{part}"
        lines.append(f"# HELP {metric} Conveyor queue {part.replace('_', ' ')} (messages).")
        lines.append(f"# TYPE {metric} gauge")
        for name, figures in backlog_json(app).items():
            lines.append(f'{metric}{{queue="{name}"}} {figures[part]}')
    return "\n".join(lines) + "\n"


def serve_metrics(app: Conveyor, port: int | None) -> ThreadingHTTPServer | None:
    """Serve ``/metrics`` and ``/backlog[/QUEUE]`` on ``port`` in a thread (None: don't)."""
    if port is None:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                body, kind = self._answer()
            except KeyError:
                self.send_error(404, "unknown queue")
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self) -> tuple[str, str]:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                return prometheus_text(app), "text/plain; version=0.0.4"
            if path == "/backlog":
                return json.dumps(backlog_json(app)), "application/json"
            if path.startswith("/backlog/"):
                return json.dumps(backlog_json(app)[path[9:]]), "application/json"
            raise KeyError(path)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="conveyor-metrics", daemon=True).start()
    return server
