"""CPU, memory, disk and GPU: of this host, and what each worker reports at its heartbeat."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

import psutil

from conveyor.app import Conveyor
from conveyor.monitor.gpu import detect_gpus
from conveyor.worker.heartbeats import live_workers


def host_resources(path: str = "/") -> dict[str, Any]:
    """This host's CPU, memory, disk (of ``path``) and GPUs."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(path)
    load = None
    with contextlib.suppress(OSError, AttributeError):
        load = [round(x, 2) for x in os.getloadavg()]
    return {
        "hostname": socket.gethostname(),
        "cpu_count": psutil.cpu_count() or 0,
        "cpu_percent": psutil.cpu_percent(interval=None),
        "load_avg": load,
        "memory_total_bytes": memory.total,
        "memory_used_percent": memory.percent,
        "disk_total_bytes": disk.total,
        "disk_used_percent": disk.percent,
        "gpus": detect_gpus(),
    }


def resources(app: Conveyor) -> dict[str, Any]:
    """Hosts (this one measured here) and every live worker's memory and GPU."""
    here = host_resources(str(app.settings.home_dir if app.settings.home_dir.exists() else "/"))
    workers: list[dict[str, Any]] = [
        {
            "name": w.name,
            "host": w.host,
            "profile": w.profile,
            "rss_bytes": getattr(w, "rss_bytes", 0),
            "gpu": getattr(w, "gpu", "") or None,
            "active": getattr(w, "active", 0),
        }
        for w in live_workers(app.redis, app.settings.heartbeat_s)
    ]
    hosts: dict[str, dict[str, Any]] = {here["hostname"]: here}
    for worker in workers:
        host = str(worker["host"])
        hosts.setdefault(host, {"hostname": host, "measured": False})
    here["measured"] = True
    return {"hosts": list(hosts.values()), "workers": workers, "at": time.time()}
