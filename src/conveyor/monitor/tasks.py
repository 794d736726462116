"""Task monitoring: health, metrics, distribution, performance, stalled jobs.

Each function returns a plain dict (the documented JSON shape of its endpoint);
``store`` is the job store (:class:`conveyor.store.repository.JobStore`).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from conveyor.app import Conveyor
from conveyor.broker.inspect import delayed_count, queue_depths
from conveyor.worker.heartbeats import live_workers

WINDOWS_MIN = (1, 5, 15)
#: At most this many jobs are read for a distribution or performance report.
SCAN_LIMIT = 5000


def _recent(store: Any, since: float, tenant: str | None) -> list[Any]:
    records: list[Any] = []
    cursor = None
    while len(records) < SCAN_LIMIT:
        page, cursor = store.list_jobs(tenant=tenant, since=since, limit=500, cursor=cursor)
        records.extend(page)
        if cursor is None:
            break
    return records


def health(
    app: Conveyor, store_problem: str | None, recorder_lag: int | None, lag_limit: int = 10_000
) -> dict[str, Any]:
    """Broker, store, recorder lag, live workers and backlog → ``ok``/``degraded``/``down``."""
    checks: dict[str, dict[str, Any]] = {}
    workers = 0
    backlog = 0
    started = time.perf_counter()
    try:
        client = app.redis
        client.ping()
        ms = (time.perf_counter() - started) * 1000
        checks["broker"] = {"status": "ok", "detail": None, "value": round(ms, 3)}
        workers = len(live_workers(client, app.settings.heartbeat_s))
        backlog = sum(d.total for d in queue_depths(client, app.topology)) + delayed_count(client)
    except Exception as exc:
        checks["broker"] = {"status": "down", "detail": str(exc), "value": None}
    checks["store"] = (
        {"status": "ok", "detail": None, "value": None}
        if store_problem is None
        else {"status": "degraded", "detail": store_problem, "value": None}
    )
    if recorder_lag is None:
        checks["recorder"] = {"status": "degraded", "detail": "recorder lag unknown", "value": None}
    else:
        checks["recorder"] = {
            "status": "ok" if recorder_lag <= lag_limit else "degraded",
            "detail": None if recorder_lag <= lag_limit else f"over {lag_limit} events behind",
            "value": float(recorder_lag),
        }
    if checks["broker"]["status"] == "ok":
        if workers == 0 and backlog > 0:
            checks["workers"] = {
                "status": "degraded",
                "detail": f"{backlog} jobs wait and no worker is live",
                "value": 0.0,
            }
        else:
            checks["workers"] = {"status": "ok", "detail": None, "value": float(workers)}
    order = {"ok": 0, "degraded": 1, "down": 2}
    status = max((c["status"] for c in checks.values()), key=order.__getitem__)
    return {
        "status": status,
        "checks": checks,
        "workers": workers,
        "backlog": backlog,
        "recorder_lag": recorder_lag,
        "checked_at": time.time(),
    }


def task_metrics(store: Any, tenant: str | None) -> dict[str, Any]:
    """Counts by status, and throughput and failure rate over the last 1, 5 and 15 minutes.

    A window counts the jobs created in it; throughput is those that finished, per minute.
    """
    now = time.time()
    windows = {}
    for minutes in WINDOWS_MIN:
        counts = store.count_by_status(tenant=tenant, since=now - 60 * minutes)
        done = counts.get("succeeded", 0) + counts.get("failed", 0)
        windows[f"{minutes}m"] = {
            "submitted": sum(counts.values()),
            "succeeded": counts.get("succeeded", 0),
            "failed": counts.get("failed", 0),
            "throughput_per_min": round(done / minutes, 3),
            "failure_rate": round(counts.get("failed", 0) / done, 4) if done else 0.0,
        }
    return {"counts": store.count_by_status(tenant=tenant), "windows": windows, "at": now}


def distribution(store: Any, tenant: str | None, window_s: float) -> dict[str, Any]:
    """Jobs created in the window, by type, queue, worker and status."""
    records = _recent(store, time.time() - window_s, tenant)
    return {
        "window_s": window_s,
        "jobs": len(records),
        "truncated": len(records) >= SCAN_LIMIT,
        "by_type": dict(Counter(r.type for r in records)),
        "by_queue": dict(Counter(r.queue for r in records)),
        "by_worker": dict(Counter(r.worker for r in records if r.worker)),
        "by_status": dict(Counter(r.status for r in records)),
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "count": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "count": len(ordered)}


def performance(store: Any, tenant: str | None, window_s: float) -> dict[str, Any]:
    """Wait and run time percentiles (seconds) by job type over the window."""
    records = _recent(store, time.time() - window_s, tenant)
    waits: dict[str, list[float]] = {}
    runs: dict[str, list[float]] = {}
    for r in records:
        if r.started_at is not None:
            begin = r.due_at or r.created_at
            waits.setdefault(r.type, []).append(max(0.0, r.started_at - begin))
            if r.finished_at is not None and r.status in ("succeeded", "failed"):
                runs.setdefault(r.type, []).append(max(0.0, r.finished_at - r.started_at))
    types = sorted(set(waits) | set(runs))
    return {
        "window_s": window_s,
        "by_type": {
            t: {"wait_s": _percentiles(waits.get(t, [])), "run_s": _percentiles(runs.get(t, []))}
            for t in types
        },
    }


def stalled(
    app: Conveyor, store: Any, tenant: str | None, threshold_s: float
) -> list[dict[str, Any]]:
    """Started jobs whose last sign of life (progress, or their worker's heartbeat) is too old."""
    now = time.time()
    beats = {w.name: w.last_heartbeat for w in live_workers(app.redis, app.settings.heartbeat_s)}
    found = []
    cursor = None
    while True:
        page, cursor = store.list_jobs(status="started", tenant=tenant, limit=500, cursor=cursor)
        for r in page:
            last = max(r.updated_at, beats.get(r.worker or "", 0.0))
            if now - last > threshold_s:
                found.append(
                    {
                        "id": r.id,
                        "type": r.type,
                        "queue": r.queue,
                        "worker": r.worker,
                        "worker_live": (r.worker or "") in beats,
                        "started_at": r.started_at,
                        "last_activity": last,
                        "idle_s": round(now - last, 3),
                        "progress": r.progress,
                    }
                )
        if cursor is None or len(found) > 1000:
            return found
