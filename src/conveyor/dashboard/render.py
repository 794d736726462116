"""The dashboard's Jinja2 environment: templates from the package, filters for times and sizes."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


def ago(stamp: float | None, now: float | None = None) -> str:
    """``12s ago``, ``3m ago``, ``in 5m``; an em dash for no time."""
    if not stamp:
        return "—"
    delta = (time.time() if now is None else now) - stamp
    text = duration(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    """Seconds as ``850ms``, ``42s``, ``7m 3s``, ``2h 5m``, ``3d 4h``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if whole >= size:
            return f"{whole // size}{unit} {(whole % size) // sub_size}{sub}"
    if whole >= 60:
        return f"{whole // 60}m {whole % 60}s"
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def utc(stamp: float | None) -> str:
    """A unix time as ``2026-12-02 05:35:02 UTC``."""
    if not stamp:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def size(count: int | None) -> str:
    """Bytes as ``512 MiB``."""
    if not count:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def pretty(value: Any) -> str:
    """A JSON value, indented."""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


#: The navigation bar: (path, label). A schedules page is added here once periodic jobs
#: have an API (a route module beside ``routes.py`` serving ``/schedules``).
NAV: list[tuple[str, str]] = [
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/dead-letters", "Dead letters"),
    ("/workers", "Workers & scaling"),
    ("/batches", "Batches"),
    ("/schedules", "Schedules"),
]


@functools.cache
def environment() -> Environment:
    """The templates, autoescaped, with this module's filters."""
    env = Environment(
        loader=PackageLoader("conveyor.dashboard", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, duration=duration, utc=utc, size=size, pretty=pretty)
    env.globals["nav"] = NAV
    return env


def render(template: str, **data: Any) -> str:
    """``template`` rendered with ``data``."""
    return environment().get_template(template).render(**data)
