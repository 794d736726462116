"""How ``conveyor up`` shares the work with the worker manager.

Under ``conveyor up`` (with ``CONVEYOR_AUTOSCALE`` on, the default) the manager
owns the worker processes of the profiles it scales: the supervisor starts the
manager as a service and no worker of its own for those profiles, so the two
never fight over a count. Profiles the manager does not scale
(``CONVEYOR_AUTOSCALE_PROFILES`` names a subset) keep one supervised worker each.
Unless ``CONVEYOR_AUTOSCALE_MIN_WORKERS`` is set (or a profile's ``workers`` bounds
in ``conveyor.toml``), the local stack's minimum is one worker per profile.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from conveyor.services.supervisor import ServiceSpec, WorkerSpec
from conveyor.topology import Topology

if TYPE_CHECKING:
    from conveyor.settings import Settings

SERVICE = "autoscale"


def autoscaled(settings: Settings, topology: Topology) -> list[str]:
    """The profiles the manager scales under ``conveyor up`` (none when autoscaling is off)."""
    if not settings.autoscale:
        return []
    names = [p.strip() for p in settings.autoscale_profiles.split(",") if p.strip()]
    for name in names:
        topology.profile(name)
    return names or list(topology.profiles)


def hand_to_manager(
    settings: Settings,
    topology: Topology,
    workers: list[WorkerSpec],
    services: list[ServiceSpec],
    grace_s: float | None = None,
    sizes: dict[str, int] | None = None,
) -> tuple[list[WorkerSpec], list[ServiceSpec]]:
    """``workers`` less those the manager owns; the manager's service told which it owns."""
    chosen = {w.profile for w in workers}
    managed = [name for name in autoscaled(settings, topology) if name in chosen]
    kept = [w for w in workers if w.profile not in managed]
    argv: tuple[str, ...] = (SERVICE, "--profiles", ",".join(managed))
    if "autoscale_min_workers" not in settings.model_fields_set:
        # A local stack starts small: one worker per profile until its backlog asks for
        # more (the production minimum of 2 applies to `conveyor autoscale`).
        for profile in managed:
            spec = topology.profile(profile)
            if spec.workers is None:
                argv += ("--bounds", f"{profile}=1:{max(1, settings.autoscale_max_workers)}")
    for profile, size in (sizes or {}).items():
        if profile in managed:
            # `up -c PROFILE=N`: the manager's workers of that profile get that size.
            argv += ("--concurrency", f"{profile}={size}")
    if grace_s is not None:
        # A little under the supervisor's own grace, so the manager is done first.
        argv += ("--grace", f"{max(0.0, grace_s - 1):g}")
    adjusted = [
        replace(s, argv=argv) if s.name == SERVICE else s
        for s in services
        if s.name != SERVICE or managed
    ]
    return kept, adjusted
