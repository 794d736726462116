"""The backlog in the forms Kubernetes autoscalers read.

* :func:`prometheus_text` — ``conveyor_queue_backlog{queue="…"}`` (and its parts)
  for Prometheus, so HPA (through prometheus-adapter) or KEDA's ``prometheus``
  scaler can scale on it;
* :func:`backlog_json` — ``{"queue": …, "backlog": …}`` per queue, the small
  answer KEDA's ``metrics-api`` scaler polls (``valueLocation: backlog``);
* :func:`profile_backlog_json` — the same summed over a profile's queues
  (``conveyor_profile_backlog{profile="…"}`` in Prometheus' form): one figure
  per worker Deployment, which is what a per-profile autoscaler needs.

The HTTP API serves both (``/metrics`` and ``GET /api/v1/scaling``); the
worker manager can also serve them itself on ``CONVEYOR_AUTOSCALE_METRICS_PORT``
(``/metrics``, ``/backlog``, ``/backlog/{queue}`` and ``/profiles/{profile}``),
which needs no API.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from conveyor.scaling.backlog import QueueBacklog, for_queues, measure

if TYPE_CHECKING:
    from conveyor.app import Conveyor

_PARTS = ("backlog", "waiting", "reserved", "running", "due_soon")


def _measure(app: Conveyor) -> dict[str, QueueBacklog]:
    return measure(app.redis, app.topology, app.settings.autoscale_poll_s)


def backlog_json(
    app: Conveyor, measured: dict[str, QueueBacklog] | None = None
) -> dict[str, dict[str, Any]]:
    """Queue name → its backlog figures (``backlog`` is what to scale on)."""
    measured = _measure(app) if measured is None else measured
    return {name: entry.as_dict() for name, entry in measured.items()}


def profile_backlog_json(
    app: Conveyor, measured: dict[str, QueueBacklog] | None = None
) -> dict[str, dict[str, Any]]:
    """Profile name → its backlog figures, summed over the profile's queues."""
    measured = _measure(app) if measured is None else measured
    return {
        name: {"profile": name, **for_queues(measured, profile.queues).as_dict()}
        for name, profile in app.topology.profiles.items()
    }


def prometheus_text(app: Conveyor) -> str:
    """The backlog of every queue, and of every profile, in Prometheus' text format."""
    lines = []
    measured = _measure(app)
    queues = backlog_json(app, measured)
    for part in _PARTS:
        metric = "conveyor_queue_backlog" if part == "backlog" else f"conveyor_queue_{part}"
        lines.append(f"# HELP {metric} Conveyor queue {part.replace('_', ' ')} (messages).")
        lines.append(f"# TYPE {metric} gauge")
        for name, figures in queues.items():
            lines.append(f'{metric}{{queue="{name}"}} {figures[part]}')
    lines.append("# HELP conveyor_profile_backlog Backlog summed over a profile's queues.")
    lines.append("# TYPE conveyor_profile_backlog gauge")
    for name, figures in profile_backlog_json(app, measured).items():
        lines.append(f'conveyor_profile_backlog{{profile="{name}"}} {figures["backlog"]}')
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
            if path.startswith("/profiles/"):
                return json.dumps(profile_backlog_json(app)[path[10:]]), "application/json"
            raise KeyError(path)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="conveyor-metrics", daemon=True).start()
    return server
