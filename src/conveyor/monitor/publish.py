"""The resource monitor: one host's CPU, memory, disk and GPU, published through Redis.

Each sample (one per host) is written in one round trip to

* ``conveyor:resources:latest`` — a hash, hostname → the host's latest sample;
* ``conveyor:resources:history:{host}`` — the host's last ``CONVEYOR_RESOURCES_HISTORY``
  samples, newest first (``GET /api/v1/monitoring/resources/history``);
* the ``conveyor:resources`` pub/sub channel, for dashboards that follow live.

The ``upkeep.resources`` job publishes the host it runs on; ``conveyor beat``
fires it every 30 seconds by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any, cast

import psutil
import redis

from conveyor import keys
from conveyor.monitor.gpu import gpu_stats


def sample(disk_path: str = "/", cpu_interval_s: float = 0.2) -> dict[str, Any]:
    """This host's resources now."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_path)
    load = None
    with contextlib.suppress(OSError, AttributeError):
        load = [round(x, 2) for x in os.getloadavg()]
    gpus = gpu_stats()
    return {
        "hostname": socket.gethostname(),
        "at": time.time(),
        "cpu": {
            "percent": psutil.cpu_percent(interval=cpu_interval_s),
            "count": psutil.cpu_count() or 0,
            "load_avg": load,
        },
        "memory": {
            "percent": memory.percent,
            "total_bytes": memory.total,
            "used_bytes": memory.used,
            "available_bytes": memory.available,
        },
        "disk": {
            "path": disk_path,
            "percent": disk.percent,
            "total_bytes": disk.total,
            "used_bytes": disk.used,
            "free_bytes": disk.free,
        },
        "gpu": {"available": bool(gpus), "gpus": gpus},
    }


def publish(client: redis.Redis, data: dict[str, Any], history: int) -> None:
    """Store ``data`` as its host's latest sample, add it to the history, announce it."""
    host = str(data["hostname"])
    text = json.dumps(data, separators=(",", ":"))
    pipe = client.pipeline(transaction=True)
    pipe.hset(keys.RESOURCES_LATEST, host, text)
    pipe.lpush(keys.resources_history(host), text)
    pipe.ltrim(keys.resources_history(host), 0, history - 1)
    pipe.publish(keys.RESOURCES_CHANNEL, text)
    pipe.execute()


def latest(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every host's latest published sample."""
    raw = cast(dict[bytes, bytes], client.hgetall(keys.RESOURCES_LATEST))
    return {host.decode(): json.loads(value) for host, value in raw.items()}


def history(client: redis.Redis, host: str, limit: int) -> list[dict[str, Any]]:
    """One host's recent samples, newest first."""
    raw = cast(list[bytes], client.lrange(keys.resources_history(host), 0, limit - 1))
    return [json.loads(value) for value in raw]
