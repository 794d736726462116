"""Worker scaling: the backlog measure, the autoscale policy, back ends and the manager.

The functions here are what the CLI and the HTTP API call:

* :func:`status` — the manager, each profile's latest view, recent decisions;
* :func:`pin` / :func:`release` — ``conveyor scale PROFILE N`` and its release;
* :func:`make_backend` — the back end ``CONVEYOR_AUTOSCALE_BACKEND`` names.
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any, cast

from conveyor import keys
from conveyor.errors import ConfigurationError
from conveyor.scaling.backends.base import Backend, BackendError

if TYPE_CHECKING:
    from conveyor.app import Conveyor

__all__ = ["Backend", "BackendError", "make_backend", "pin", "release", "status"]


def running_manager(app: Conveyor) -> dict[str, Any] | None:
    """The worker manager that runs now (pid, host, back end…), or None.

    A manager on this host whose process has exited (a finished ``autoscale --once``,
    whose report lingers for three polling intervals) does not count.
    """
    import psutil

    raw = app.redis.get(keys.SCALING_MANAGER)
    if not raw:
        return None
    manager = cast(dict[str, Any], json.loads(raw))
    if manager.get("host") == socket.gethostname():
        pid = int(manager.get("pid") or 0)
        if pid == os.getpid() or not psutil.pid_exists(pid):
            return None
    return manager


def pin(app: Conveyor, profile: str, count: int) -> None:
    """Pin ``profile`` to ``count`` workers until :func:`release` (the manager applies it)."""
    app.topology.profile(profile)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigurationError(f"worker count must be an integer ≥ 0 (got {count!r})")
    app.redis.hset(keys.SCALING_PINS, profile, count)


def release(app: Conveyor, profile: str) -> bool:
    """Hand ``profile`` back to the autoscale policy; False if it was not pinned."""
    app.topology.profile(profile)
    return bool(app.redis.hdel(keys.SCALING_PINS, profile))


def status(app: Conveyor, decisions: int = 20) -> dict[str, Any]:
    """The scaling state, as ``conveyor scale --status`` and ``GET /api/v1/scaling`` show it.

    ``manager`` is None when no manager has reported within three polling
    intervals. ``unhealthy_workers`` lists registered workers whose heartbeat is
    older than ``CONVEYOR_WORKER_STALE_S`` (frozen, hung or dead). ``profiles``
    maps each profile to its latest view (current and
    desired counts, pin, backlog and its parts, CPU, memory, average job time,
    the reason of the last decision, any back end error); ``decisions`` lists the
    latest changes, newest first.
    """
    client = app.redis
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.SCALING_MANAGER)
    pipe.hgetall(keys.SCALING_STATE)
    pipe.hgetall(keys.SCALING_PINS)
    pipe.lrange(keys.SCALING_DECISIONS, 0, max(0, decisions - 1))
    manager_raw, state_raw, pins_raw, decisions_raw = pipe.execute()
    profiles: dict[str, Any] = {
        k.decode(): json.loads(v) for k, v in cast(dict[bytes, bytes], state_raw).items()
    }
    pins = {k.decode(): int(v) for k, v in cast(dict[bytes, bytes], pins_raw).items()}
    for name, count in pins.items():
        profiles.setdefault(name, {"profile": name})["pinned"] = count
    for name, view in profiles.items():
        if name not in pins:
            view["pinned"] = None
    from conveyor.scaling.health import heartbeat_ages, stale_after_s

    stale_s = stale_after_s(app.settings)
    return {
        "manager": json.loads(manager_raw) if manager_raw else None,
        "profiles": profiles,
        "decisions": [json.loads(d) for d in decisions_raw] if decisions else [],
        "unhealthy_workers": [
            {"name": name, "heartbeat_age_s": round(age, 3)}
            for name, age in heartbeat_ages(client).items()
            if age > stale_s
        ],
    }


def make_backend(app: Conveyor, sizes: dict[str, int] | None = None) -> Backend:
    """The back end ``CONVEYOR_AUTOSCALE_BACKEND`` names (``local`` by default).

    ``sizes`` (profile → processes per worker) applies to local workers only.
    """
    kind = app.settings.autoscale_backend
    if kind == "kubernetes":
        from conveyor.scaling.backends.kubernetes import KubernetesBackend

        return KubernetesBackend.from_settings(app.settings)
    if kind == "compose":
        from conveyor.scaling.backends.compose import ComposeBackend

        return ComposeBackend.from_settings(app.settings)
    from conveyor.scaling.backends.local import LocalBackend

    return LocalBackend(app, sizes=sizes)
