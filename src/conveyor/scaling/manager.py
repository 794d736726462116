"""The worker manager: measure, decide, scale, check health — once per polling interval.

Per profile it reads the backlog (:mod:`conveyor.scaling.backlog`), the
workers' CPU and memory (from the back end) and the average job time (from the
event stream), asks the policy for a count, and applies it — unless
``conveyor scale PROFILE N`` pinned one. Every change is logged with its reason
and kept in Redis (``conveyor:scaling:*``), where :func:`conveyor.scaling.status`
reads it. A back end error (an unreachable Kubernetes API…) is logged and
recorded; the manager then keeps the workers it has and tries again next time.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

import redis

from conveyor import keys
from conveyor.errors import ConfigurationError, ConveyorError
from conveyor.scaling import backlog as backlog_mod
from conveyor.scaling.backends.base import Backend, BackendError
from conveyor.scaling.policy import Decision, Observation, Policy, PolicyConfig, parse_backlog_steps

if TYPE_CHECKING:
    from conveyor.app import Conveyor

log = logging.getLogger("conveyor.scaling")

#: How many decisions ``conveyor:scaling:decisions`` keeps.
DECISIONS_KEPT = 200
#: Average job time looks back this far.
JOB_TIME_WINDOW_S = 300.0


def policy_config(
    app: Conveyor, profile: str, bounds: tuple[int, int] | None = None
) -> PolicyConfig:
    """The policy for ``profile``: settings, then the profile's ``workers``, then ``bounds``."""
    settings = app.settings
    spec = app.topology.profile(profile)
    low, high = (
        bounds
        or spec.workers
        or (
            settings.autoscale_min_workers,
            settings.autoscale_max_workers,
        )
    )
    try:
        return PolicyConfig(
            min_workers=low,
            max_workers=high,
            backlog_steps=parse_backlog_steps(settings.autoscale_backlog_steps),
            cpu_up_pct=settings.autoscale_cpu_up_pct,
            cpu_down_pct=settings.autoscale_cpu_down_pct,
            memory_up_pct=settings.autoscale_memory_up_pct,
            memory_down_pct=settings.autoscale_memory_down_pct,
            job_time_up_s=settings.autoscale_job_time_up_s,
            job_time_down_s=settings.autoscale_job_time_down_s,
            up_cooldown_s=settings.autoscale_up_cooldown_s,
            down_delay_s=settings.autoscale_down_delay_s,
            hysteresis=settings.autoscale_hysteresis,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"profile {profile}: {exc}") from None


def managed_profiles(app: Conveyor, chosen: list[str] | None = None) -> list[str]:
    """The profiles to scale: ``chosen``, else ``CONVEYOR_AUTOSCALE_PROFILES``, else all."""
    names = chosen or [p.strip() for p in app.settings.autoscale_profiles.split(",") if p.strip()]
    if not names:
        return list(app.topology.profiles)
    for name in names:
        app.topology.profile(name)
    return names


@dataclass
class ProfileStatus:
    """The manager's latest view of one profile (what ``conveyor scale --status`` shows)."""

    profile: str
    min: int
    max: int
    current: int
    desired: int
    pinned: int | None
    backlog: int
    waiting: int
    reserved: int
    running: int
    due_soon: int
    cpu_pct: float | None
    memory_pct: float | None
    avg_job_s: float | None
    reason: str
    error: str | None
    updated_at: float


class Manager:
    """Scales each managed profile through one back end."""

    def __init__(
        self,
        app: Conveyor,
        backend: Backend,
        profiles: list[str] | None = None,
        bounds: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.app = app
        self.backend = backend
        self.profiles = managed_profiles(app, profiles)
        self.poll_s = app.settings.autoscale_poll_s
        bounds = bounds or {}
        for name in bounds:
            app.topology.profile(name)
        self.policies = {
            name: Policy(policy_config(app, name, bounds.get(name))) for name in self.profiles
        }
        self._stop = threading.Event()
        self.started_at = time.time()

    @property
    def client(self) -> redis.Redis:
        """The broker client."""
        return self.app.redis

    # ------------------------------------------------------------------ tick

    def tick(self, now: float | None = None) -> list[ProfileStatus]:
        """One round: health checks, then measure and scale every profile."""
        now = time.time() if now is None else now
        for event in self._health():
            self._record(
                event.profile,
                "replace",
                f"worker {event.worker} unhealthy: {event.reason}; {event.action}"
                + (f"; handed back {len(event.requeued)} job(s)" if event.requeued else ""),
                now,
            )
        measured = backlog_mod.measure(self.client, self.app.topology, self.poll_s, now)
        times = backlog_mod.job_times(self.client, JOB_TIME_WINDOW_S, now)
        pins = self.pins()
        statuses = []
        for name in self.profiles:
            statuses.append(self._scale_profile(name, measured, times, pins.get(name), now))
        self._publish(statuses, now)
        return statuses

    def _health(self) -> list[Any]:
        try:
            return self.backend.check_health()
        except (BackendError, redis.RedisError) as exc:
            log.warning("health check failed: %s", exc)
            return []

    def _scale_profile(
        self,
        name: str,
        measured: dict[str, backlog_mod.QueueBacklog],
        times: dict[str, list[float]],
        pinned: int | None,
        now: float,
    ) -> ProfileStatus:
        policy = self.policies[name]
        queues = self.app.topology.profile(name).queues
        work = backlog_mod.for_queues(measured, queues)
        error = None
        try:
            current = self.backend.current(name)
            usage = self.backend.usage(name)
        except BackendError as exc:
            log.error("profile %s: %s; keeping its workers as they are", name, exc)
            return self._status(name, policy, work, None, None, pinned, f"error: {exc}", str(exc))
        avg = backlog_mod.mean_runtime(times, queues)
        obs = Observation(
            now=now,
            current=current,
            backlog=work.backlog,
            cpu_pct=usage.cpu_pct,
            memory_pct=usage.memory_pct,
            avg_job_s=avg,
            running=work.running,
        )
        decision = policy.decide(obs)
        target, reason = decision.target, decision.reason
        if pinned is not None:
            target, reason = pinned, f"pinned to {pinned} by `conveyor scale` ({reason})"
        if target != current:
            try:
                self.backend.scale(name, target)
                verb = "scale up" if target > current else "scale down"
                self._record(name, verb, f"{current} → {target}: {reason}", now)
            except (BackendError, ConveyorError) as exc:
                error = str(exc)
                log.error("profile %s: could not scale to %d: %s", name, target, exc)
                target = current
        status = self._status(name, policy, work, obs, decision, pinned, reason, error)
        status.desired = target
        return status

    def _status(
        self,
        name: str,
        policy: Policy,
        work: backlog_mod.QueueBacklog,
        obs: Observation | None,
        decision: Decision | None,
        pinned: int | None,
        reason: str,
        error: str | None,
    ) -> ProfileStatus:
        current = obs.current if obs else -1
        return ProfileStatus(
            profile=name,
            min=policy.config.min_workers,
            max=policy.config.max_workers,
            current=current,
            desired=decision.target if decision else current,
            pinned=pinned,
            backlog=work.backlog,
            waiting=work.waiting,
            reserved=work.reserved,
            running=work.running,
            due_soon=work.due_soon,
            cpu_pct=obs.cpu_pct if obs else None,
            memory_pct=obs.memory_pct if obs else None,
            avg_job_s=obs.avg_job_s if obs else None,
            reason=reason,
            error=error,
            updated_at=time.time(),
        )

    # --------------------------------------------------------------- records

    def pins(self) -> dict[str, int]:
        """Profile → pinned count, as ``conveyor scale`` left them."""
        raw = cast(dict[bytes, bytes], self.client.hgetall(keys.SCALING_PINS))
        return {k.decode(): int(v) for k, v in raw.items()}

    def _record(self, profile: str, action: str, reason: str, now: float) -> None:
        log.info("%s: %s — %s", profile, action, reason)
        entry = {"ts": now, "profile": profile, "action": action, "reason": reason}
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(keys.SCALING_DECISIONS, json.dumps(entry))
        pipe.ltrim(keys.SCALING_DECISIONS, 0, DECISIONS_KEPT - 1)
        pipe.execute()

    def _publish(self, statuses: list[ProfileStatus], now: float) -> None:
        manager = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "backend": self.backend.name,
            "poll_s": self.poll_s,
            "profiles": self.profiles,
            "started_at": self.started_at,
            "updated_at": now,
        }
        ttl = max(2, int(self.poll_s * 3) + 1)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(keys.SCALING_MANAGER, json.dumps(manager), ex=ttl)
        if statuses:
            pipe.hset(
                keys.SCALING_STATE,
                mapping={s.profile: json.dumps(asdict(s)) for s in statuses},
            )
        pipe.execute()

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        """Tick every ``CONVEYOR_AUTOSCALE_POLL_S`` until :meth:`stop`; survive broker errors."""
        log.info(
            "worker manager (%s back end) scaling %s every %gs",
            self.backend.name,
            ", ".join(self.profiles),
            self.poll_s,
        )
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except redis.RedisError as exc:
                log.warning("broker unreachable (%s); keeping the workers as they are", exc)
            except Exception:  # a bug in one round must not orphan the workers
                log.exception("scaling round failed; keeping the workers as they are")
            self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - began)))

    def stop(self) -> None:
        """Make :meth:`run` return after the current tick."""
        self._stop.set()
