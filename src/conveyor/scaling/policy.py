"""The autoscale policy: from what a profile looks like now to how many workers it should run.

A pure function of its inputs (no Redis, no clock of its own), so every rule is
unit-tested. The default rules:

* **backlog** <20 → the minimum (2 by default), 20–49 → 3, 50–100 → 5, >100 → 10
  (steps ``20:3,50:5,101:10``: a backlog ≥ the threshold wants that many);
* **resources** scale up at 70 % CPU or 80 % memory; scale down only while both CPU
  and memory are below 30 % (each threshold its own setting);
* **job time** scale up while the average job takes over 60 s, scale down only
  while it is under 20 s (or no job finished recently).

Flapping is prevented three ways: a band is only left downwards once the backlog
is a ``hysteresis`` fraction below its threshold; a lower count must be wanted
for ``down_delay_s`` in a row (the highest recommendation over that window
wins, as Kubernetes' HPA stabilisation window does); and two scale-ups are at
least ``up_cooldown_s`` apart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from conveyor.errors import ConfigurationError


@dataclass(frozen=True)
class PolicyConfig:
    """The thresholds of the policy; see the module docstring."""

    min_workers: int = 2
    max_workers: int = 10
    #: (backlog threshold, workers) pairs, ascending: a backlog ≥ threshold wants that many.
    backlog_steps: tuple[tuple[int, int], ...] = ((20, 3), (50, 5), (101, 10))
    cpu_up_pct: float = 70.0
    cpu_down_pct: float = 30.0
    memory_up_pct: float = 80.0
    memory_down_pct: float = 30.0
    job_time_up_s: float = 60.0
    job_time_down_s: float = 20.0
    up_cooldown_s: float = 30.0
    down_delay_s: float = 120.0
    hysteresis: float = 0.2

    def __post_init__(self) -> None:
        if self.min_workers < 0:
            raise ConfigurationError(f"min workers must be ≥ 0 (got {self.min_workers})")
        if self.min_workers > self.max_workers:
            raise ConfigurationError(
                f"min workers ({self.min_workers}) is above max workers ({self.max_workers})"
            )
        thresholds = [t for t, _ in self.backlog_steps]
        if thresholds != sorted(thresholds) or any(t < 0 for t in thresholds):
            raise ConfigurationError("backlog steps must have ascending thresholds ≥ 0")


def parse_backlog_steps(text: str) -> tuple[tuple[int, int], ...]:
    """``"20:3,50:5,101:10"`` → ``((20, 3), (50, 5), (101, 10))``."""
    steps = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        threshold, sep, count = part.partition(":")
        if not sep or not threshold.strip().isdigit() or not count.strip().isdigit():
            raise ConfigurationError(
                f"CONVEYOR_AUTOSCALE_BACKLOG_STEPS: expected BACKLOG:WORKERS pairs such as "
                f"'20:3,50:5,101:10' (got {part!r})"
            )
        steps.append((int(threshold), int(count)))
    result = tuple(sorted(steps))
    return result


@dataclass(frozen=True)
class Observation:
    """What the manager measured for one profile at one moment."""

    now: float
    current: int
    backlog: int
    cpu_pct: float | None = None
    memory_pct: float | None = None
    avg_job_s: float | None = None
    running: int = 0


@dataclass(frozen=True)
class Decision:
    """The policy's answer: the count to run, whether it changes, and why."""

    target: int
    current: int
    reason: str
    recommended: int

    @property
    def changed(self) -> bool:
        """Whether the count changes."""
        return self.target != self.current


@dataclass
class Policy:
    """The stateful part of the policy: recent recommendations and the last scale-up."""

    config: PolicyConfig
    _history: deque[tuple[float, int]] = field(default_factory=deque)
    _last_up: float | None = None
    _first_seen: float | None = None
    _band: int = 0

    def recommend(self, obs: Observation) -> tuple[int, str]:
        """The count the rules want right now (before stabilisation), and why."""
        cfg = self.config
        steps = cfg.backlog_steps
        # Hysteresis: the band only falls once the backlog is well under its threshold.
        band = 0
        for index, (threshold, _) in enumerate(steps, start=1):
            if obs.backlog >= threshold:
                band = index
        while band < self._band:
            threshold = steps[self._band - 1][0]
            if obs.backlog >= threshold * (1 - cfg.hysteresis):
                band = self._band
                break
            self._band -= 1
        self._band = band
        wanted = steps[band - 1][1] if band else cfg.min_workers
        reasons = [
            f"backlog {obs.backlog} → {wanted}"
            if band
            else f"backlog {obs.backlog} < {steps[0][0] if steps else 0} → minimum {wanted}"
        ]
        busy = obs.backlog > 0 or obs.running > 0
        if busy and wanted == 0:
            # A minimum of 0 lets a profile sleep, not leave waiting work undone.
            wanted = 1
            reasons.append("work waiting → 1")
        pressure = []
        if obs.cpu_pct is not None and obs.cpu_pct >= cfg.cpu_up_pct:
            pressure.append(f"CPU {obs.cpu_pct:.0f}% ≥ {cfg.cpu_up_pct:g}%")
        if obs.memory_pct is not None and obs.memory_pct >= cfg.memory_up_pct:
            pressure.append(f"memory {obs.memory_pct:.0f}% ≥ {cfg.memory_up_pct:g}%")
        if obs.avg_job_s is not None and obs.avg_job_s > cfg.job_time_up_s:
            pressure.append(f"average job {obs.avg_job_s:.1f}s > {cfg.job_time_up_s:g}s")
        if pressure and obs.backlog > 0 and wanted <= obs.current:
            wanted = obs.current + 1
            reasons.append(" and ".join(pressure) + f" → {wanted}")
        elif wanted < obs.current and busy:
            holds = []
            if obs.cpu_pct is not None and obs.cpu_pct >= cfg.cpu_down_pct:
                holds.append(f"CPU {obs.cpu_pct:.0f}% ≥ {cfg.cpu_down_pct:g}%")
            if obs.memory_pct is not None and obs.memory_pct >= cfg.memory_down_pct:
                holds.append(f"memory {obs.memory_pct:.0f}% ≥ {cfg.memory_down_pct:g}%")
            if obs.avg_job_s is not None and obs.avg_job_s >= cfg.job_time_down_s:
                holds.append(f"average job {obs.avg_job_s:.1f}s ≥ {cfg.job_time_down_s:g}s")
            if holds:
                wanted = obs.current
                reasons.append("holding: " + ", ".join(holds))
        clamped = max(cfg.min_workers, min(cfg.max_workers, wanted))
        if clamped != wanted:
            reasons.append(f"clamped to [{cfg.min_workers}, {cfg.max_workers}] → {clamped}")
        return clamped, "; ".join(reasons)

    def decide(self, obs: Observation) -> Decision:
        """Apply the rules, the down-scale stabilisation window and the up-scale cooldown."""
        cfg = self.config
        wanted, reason = self.recommend(obs)
        if self._first_seen is None:
            self._first_seen = obs.now
        self._history.append((obs.now, wanted))
        while self._history and self._history[0][0] < obs.now - cfg.down_delay_s:
            self._history.popleft()
        target = wanted
        if wanted < obs.current:
            # Stabilisation: scale down only to the highest count wanted over the window,
            # and only once the window is full of observations.
            window_full = obs.now - self._first_seen >= cfg.down_delay_s
            highest = max(count for _, count in self._history)
            target = min(obs.current, highest) if window_full else obs.current
            if target != wanted:
                reason += f"; waiting {cfg.down_delay_s:g}s of lower demand before scaling down"
        elif wanted > obs.current:
            cooling = self._last_up is not None and obs.now - self._last_up < cfg.up_cooldown_s
            # Below the minimum (a worker died) is restored at once, cooldown or not.
            if cooling and obs.current >= cfg.min_workers and self._last_up is not None:
                target = obs.current
                wait = cfg.up_cooldown_s - (obs.now - self._last_up)
                reason += f"; scale-up cooldown ({wait:.0f}s left)"
            elif obs.current >= cfg.min_workers:
                # Restoring the minimum is not a scale-up the cooldown should count.
                self._last_up = obs.now
        return Decision(target=target, current=obs.current, reason=reason, recommended=wanted)
