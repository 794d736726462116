"""What every deployment target is rendered from: the profiles and settings, resolved once.

Compose, Kubernetes and systemd files all read one :class:`DeployPlan`, built
from the topology (``conveyor.toml``'s profiles are the single source) and the
settings (time limits, heartbeat, autoscale bounds and backlog steps), so the
three never disagree on a profile's queues, grace period or GPU use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from conveyor.deploy import DEFAULT_IMAGE, DEFAULT_NAMESPACE
from conveyor.errors import ConfigurationError
from conveyor.scaling.policy import parse_backlog_steps
from conveyor.settings import Settings
from conveyor.topology import Profile, Topology

#: Seconds a stopping worker gets beyond the hard time limit: the limit's kill,
#: the job's failure or retry and the acknowledgement all happen inside it.
STOP_MARGIN_S = 60
HEARTBEAT_FILE = "/tmp/conveyor-heartbeat"
API_PORT = 8000
BROKER_PORT = 6379
STORE_PORT = 5432
FLOWER_PORT = 5555
DEFAULT_METRICS_PORT = 9808


@dataclass(frozen=True)
class ProfilePlan:
    """One worker profile as a deployment runs it."""

    profile: Profile
    #: Seconds between SIGTERM and SIGKILL: the hard time limit plus a margin.
    grace_s: int
    #: Fewest and most workers (replicas) of this profile.
    bounds: tuple[int, int]

    @property
    def name(self) -> str:
        """The profile's name."""
        return self.profile.name

    @property
    def gpu(self) -> bool:
        """Whether the profile's workers should get a GPU (``gpu`` other than ``none``)."""
        return self.profile.gpu != "none"

    @property
    def concurrency(self) -> int:
        """Job processes per worker."""
        return self.profile.concurrency


@dataclass(frozen=True)
class DeployPlan:
    """Everything the deployment files say, resolved from the topology and settings."""

    profiles: tuple[ProfilePlan, ...]
    image: str
    namespace: str
    #: Whether the worker manager scales the workers (else fixed counts).
    autoscale: bool
    metrics_port: int
    #: Waiting jobs per worker an external autoscaler aims at (KEDA/HPA target).
    backlog_per_worker: int
    poll_s: int
    down_delay_s: int
    #: Seconds after which a worker's heartbeat file counts as stale.
    stale_s: int

    def profile_names(self) -> list[str]:
        """The planned profiles' names, in topology order."""
        return [p.name for p in self.profiles]


def make_plan(
    settings: Settings,
    topology: Topology,
    profiles: list[str] | None = None,
    *,
    image: str = DEFAULT_IMAGE,
    namespace: str = DEFAULT_NAMESPACE,
) -> DeployPlan:
    """The plan for ``profiles`` (default: every profile of ``topology``)."""
    names = profiles or list(topology.profiles)
    chosen = tuple(_profile_plan(settings, topology.profile(name)) for name in names)
    if not chosen:
        raise ConfigurationError("--profiles: name at least one profile")
    steps = parse_backlog_steps(settings.autoscale_backlog_steps)
    # The largest step says how many waiting jobs one worker is meant to carry.
    threshold, workers = steps[-1] if steps else (20, 1)
    return DeployPlan(
        profiles=chosen,
        image=image,
        namespace=namespace,
        autoscale=settings.autoscale,
        metrics_port=settings.autoscale_metrics_port or DEFAULT_METRICS_PORT,
        backlog_per_worker=max(1, threshold // max(1, workers)),
        poll_s=max(1, math.ceil(settings.autoscale_poll_s)),
        down_delay_s=math.ceil(settings.autoscale_down_delay_s),
        stale_s=math.ceil(settings.worker_stale_s or 3 * settings.heartbeat_s),
    )


def _profile_plan(settings: Settings, profile: Profile) -> ProfilePlan:
    hard = profile.time_limit or settings.time_limit_s
    low, high = profile.workers or (
        settings.autoscale_min_workers,
        settings.autoscale_max_workers,
    )
    return ProfilePlan(
        profile=profile,
        grace_s=math.ceil(hard) + STOP_MARGIN_S,
        bounds=(low, max(low, high)),
    )
