"""``conveyor doctor``: is everything this machine needs present and reachable?"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from redis.exceptions import NoPermissionError

from conveyor.app import Conveyor
from conveyor.broker.permissions import describe, missing_permission
from conveyor.errors import ConveyorError
from conveyor.monitor.gpu import detect_gpus
from conveyor.settings import mask_url


@dataclass
class Check:
    """One finding: what was checked, whether it is fine, and the detail."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def run_checks(app: Conveyor) -> list[Check]:
    """Every check, in the order they are shown."""
    checks = [Check("python", True, platform.python_version())]
    for package in ("conveyor", "celery", "kombu", "redis", "pydantic"):
        try:
            checks.append(Check(package, True, version(package)))
        except PackageNotFoundError:
            checks.append(Check(package, False, "not installed"))
    checks.append(broker_check(app))
    checks.append(store_check(app))
    checks.append(recorder_check(app))
    checks.append(ffmpeg_check(app))
    checks.append(gpu_check())
    return checks


def broker_check(app: Conveyor) -> Check:
    """Reach the broker and report its server version."""
    try:
        url = app.broker_url
        app.check_broker()
        denied = missing_permission(app.redis, url)
        if denied is not None:
            return Check("broker", False, f"{mask_url(url)}: {denied}")
        info = app.redis.info("server")
    except ConveyorError as exc:
        return Check("broker", False, str(exc))
    except NoPermissionError as exc:
        return Check("broker", False, f"{mask_url(url)}: {describe(exc, url)}")
    server = "valkey" if "valkey_version" in info else "redis"
    server_version = info.get("valkey_version") or info.get("redis_version", "?")
    return Check("broker", True, f"{mask_url(url)} ({server} {server_version})")


def store_check(app: Conveyor) -> Check:
    """Reach the job store and report its schema revision."""
    from conveyor.store import open_store
    from conveyor.store.db import database_url, sqlite_file_missing

    url = database_url(app.settings)
    if sqlite_file_missing(url):
        # A check must not create the database (in whatever directory it was run).
        return Check("job store", True, f"{url} (not created yet: the recorder creates it)")
    try:
        store = open_store(app.settings)
    except ConveyorError as exc:
        return Check("job store", False, str(exc))
    try:
        store.check()
        revision = store.revision()
    except ConveyorError as exc:
        return Check("job store", False, str(exc))
    finally:
        store.close()
    schema = f"schema {revision}" if revision else "empty (the recorder migrates it on start)"
    return Check("job store", True, f"{store.url} ({schema})")


def recorder_check(app: Conveyor, max_age_s: float = 60.0) -> Check:
    """How far the recorder is behind the event stream (from Redis)."""
    from conveyor.store.recorder import recorder_lag

    try:
        lag = recorder_lag(app.redis)
    except Exception as exc:  # broker down: the broker check already says so
        return Check("recorder", False, f"lag unknown ({exc})", required=False)
    if not lag.group:
        detail = f"never ran; {lag.unread} events waiting (started by `conveyor up`)"
        return Check("recorder", lag.unread == 0, detail, required=False)
    age = "none" if lag.oldest_age_s is None else f"{lag.oldest_age_s:.1f}s old"
    unread = "?" if lag.unread is None else str(lag.unread)
    detail = f"{lag.pending} pending, {unread} unread; oldest unrecorded event: {age}"
    behind = lag.oldest_age_s is not None and lag.oldest_age_s > max_age_s
    return Check("recorder", not behind, detail + (" (behind)" if behind else ""), required=False)


def ffmpeg_check(app: Conveyor) -> Check:
    """The ffmpeg media jobs run: ``CONVEYOR_FFMPEG``, else the one ``imageio-ffmpeg`` ships."""
    from conveyor.packs.media.binary import ffmpeg_path
    from conveyor.packs.media.binary import version as ffmpeg_version

    try:
        found = ffmpeg_path(app.settings)
    except (ImportError, RuntimeError, ConveyorError) as exc:
        return Check("ffmpeg", False, f"not found (media jobs need it): {exc}", required=False)
    return Check("ffmpeg", True, f"{found} ({ffmpeg_version(found)})", required=False)


def gpu_check() -> Check:
    """GPUs through NVML, else ``nvidia-smi``; none is fine (jobs run on CPU)."""
    names = detect_gpus()
    if not names:
        return Check("gpu", True, "none (GPU-preferring profiles run on CPU)", required=False)
    return Check("gpu", True, f"{len(names)}: {', '.join(names)}", required=False)
