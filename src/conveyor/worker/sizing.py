"""How many pool processes a worker runs, and where that number came from.

One rule for every way a worker starts (``conveyor worker``, ``conveyor up``,
the worker manager), most specific first:

1. ``--concurrency`` on the command line (or ``-c PROFILE=N`` for ``up``/``autoscale``);
2. the profile's ``autoscale`` or ``concurrency`` in ``conveyor.toml``;
3. ``CONVEYOR_PROFILE_<NAME>_CONCURRENCY`` in the environment (profile-scoped);
4. ``CELERY_WORKER_CONCURRENCY`` in the environment (the global default);
5. the built-in profile: its ``autoscale`` range, else its concurrency capped at
   the machine's CPU count.

``autoscale = [min, max]`` runs Celery's own pool autoscaler (prefork pool only:
the threads and solo pools cannot grow), starting at ``min`` processes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.errors import ConfigurationError
from conveyor.settings import Settings
from conveyor.topology import Profile


@dataclass(frozen=True)
class PoolSize:
    """A worker's pool size: fixed (``autoscale`` None) or autoscaled up to ``concurrency``."""

    concurrency: int
    autoscale: tuple[int, int] | None
    #: Where the number came from, as a user would write it (shown in the worker banner).
    source: str

    def describe(self) -> str:
        """``4 (conveyor.toml)`` or ``2–4 autoscale (built-in)``."""
        if self.autoscale is not None:
            low, high = self.autoscale
            return f"{low}–{high} autoscale ({self.source})"
        return f"{self.concurrency} ({self.source})"


def profile_env_name(profile: str) -> str:
    """``CONVEYOR_PROFILE_<NAME>_CONCURRENCY`` for ``profile`` (``-`` and ``.`` become ``_``)."""
    return f"CONVEYOR_PROFILE_{re.sub(r'[^A-Za-z0-9]', '_', profile).upper()}_CONCURRENCY"


def pool_size(
    settings: Settings,
    profile: Profile,
    *,
    override: int | None = None,
    pool: str | None = None,
    environ: Mapping[str, str] | None = None,
    cpus: int | None = None,
) -> PoolSize:
    """The pool size a worker of ``profile`` runs with (see the module docstring)."""
    environ = os.environ if environ is None else environ
    autoscale = profile.autoscale if (pool or profile.pool) == "prefork" else None
    if override is not None:
        return PoolSize(override, None, "--concurrency")
    if "autoscale" in profile.configured and autoscale is not None:
        return PoolSize(autoscale[1], autoscale, "conveyor.toml")
    if "concurrency" in profile.configured:
        return PoolSize(profile.concurrency, None, "conveyor.toml")
    name = profile_env_name(profile.name)
    scoped = environ.get(name)
    if scoped is not None:
        return PoolSize(_positive(scoped, name), None, name)
    if settings.worker_concurrency is not None:
        return PoolSize(settings.worker_concurrency, None, "CELERY_WORKER_CONCURRENCY")
    if autoscale is not None:
        return PoolSize(autoscale[1], autoscale, "built-in")
    cpus = cpus or os.cpu_count() or 1
    return PoolSize(min(profile.concurrency, cpus), None, "built-in")


def _positive(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{name}: must be an integer ≥ 1 (got {text!r})")
    return value
