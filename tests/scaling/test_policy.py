"""The autoscale policy, rule by rule, and on input that would make a naive policy flap."""

from __future__ import annotations

import itertools

import pytest

from conveyor.errors import ConfigurationError
from conveyor.scaling.policy import (
    Observation,
    Policy,
    PolicyConfig,
    parse_backlog_steps,
)

INSTANT = PolicyConfig(up_cooldown_s=0, down_delay_s=0, hysteresis=0)


def want(backlog: int, current: int = 2, config: PolicyConfig = INSTANT, **kw: float) -> int:
    return Policy(config).decide(Observation(now=0, current=current, backlog=backlog, **kw)).target


@pytest.mark.parametrize(
    ("backlog", "workers"),
    [(0, 2), (19, 2), (20, 3), (49, 3), (50, 5), (99, 5), (100, 5), (101, 10), (5000, 10)],
)
def test_backlog_table_is_the_seed_rules(backlog: int, workers: int) -> None:
    assert want(backlog) == workers


def test_counts_are_clamped_to_the_profile_bounds() -> None:
    config = PolicyConfig(min_workers=1, max_workers=6, up_cooldown_s=0, down_delay_s=0)
    assert want(500, config=config) == 6
    assert want(0, current=3, config=config) == 1


def test_cpu_over_threshold_adds_a_worker_while_there_is_backlog() -> None:
    assert want(5, current=2, cpu_pct=75) == 3
    assert want(0, current=2, cpu_pct=95) == 2  # nothing waiting: more workers would not help


def test_memory_over_threshold_adds_a_worker() -> None:
    assert want(5, current=2, memory_pct=85) == 3


def test_memory_scales_down_only_below_its_down_threshold() -> None:
    # Busy (work running) and over-provisioned: memory at 50 % holds the count ...
    held = Policy(INSTANT).decide(
        Observation(now=0, current=5, backlog=0, running=1, cpu_pct=5, memory_pct=50)
    )
    assert held.target == 5
    assert "memory 50% ≥ 30%" in held.reason
    # ... and at 20 % lets it fall to what the backlog wants.
    freed = Policy(INSTANT).decide(
        Observation(now=0, current=5, backlog=0, running=1, cpu_pct=5, memory_pct=20)
    )
    assert freed.target == 2


def test_long_jobs_add_a_worker_and_short_ones_allow_scale_down() -> None:
    assert want(5, current=2, avg_job_s=61) == 3
    assert want(5, current=5, avg_job_s=5) == 2


def test_scale_down_holds_while_cpu_or_job_time_is_in_the_middle_band() -> None:
    assert want(5, current=5, cpu_pct=50) == 5
    assert want(5, current=5, avg_job_s=30) == 5
    assert want(5, current=5, cpu_pct=10, avg_job_s=10) == 2


def test_idle_profile_scales_down_whatever_the_last_job_time() -> None:
    assert want(0, current=5, avg_job_s=45) == 2


def test_up_cooldown_spaces_scale_ups() -> None:
    policy = Policy(PolicyConfig(up_cooldown_s=30, down_delay_s=0))
    assert policy.decide(Observation(now=0, current=2, backlog=30)).target == 3
    assert policy.decide(Observation(now=10, current=3, backlog=60)).target == 3
    assert policy.decide(Observation(now=31, current=3, backlog=60)).target == 5


def test_below_minimum_is_restored_despite_the_cooldown() -> None:
    policy = Policy(PolicyConfig(up_cooldown_s=300, down_delay_s=0))
    assert policy.decide(Observation(now=0, current=2, backlog=30)).target == 3
    assert policy.decide(Observation(now=1, current=1, backlog=0)).target == 2


def test_scale_down_waits_for_the_whole_delay_of_lower_demand() -> None:
    policy = Policy(PolicyConfig(up_cooldown_s=0, down_delay_s=60))
    assert policy.decide(Observation(now=0, current=2, backlog=150)).target == 10
    assert policy.decide(Observation(now=30, current=10, backlog=0)).target == 10
    assert policy.decide(Observation(now=59, current=10, backlog=0)).target == 10
    # The peak at t=0 is out of the window only after 60 s.
    assert policy.decide(Observation(now=61, current=10, backlog=0)).target == 2


def test_flapping_backlog_around_a_threshold_does_not_flap_the_count() -> None:
    policy = Policy(PolicyConfig(up_cooldown_s=0, down_delay_s=30, hysteresis=0.2))
    counts = []
    current = 2
    for step in range(40):
        backlog = 52 if step % 2 == 0 else 47  # oscillates across the 50 threshold
        current = policy.decide(Observation(now=step * 5, current=current, backlog=backlog)).target
        counts.append(current)
    changes = sum(1 for a, b in itertools.pairwise(counts) if a != b)
    assert counts[0] == 5
    assert changes == 0


def test_hysteresis_lets_the_count_fall_once_the_backlog_is_well_below() -> None:
    policy = Policy(PolicyConfig(up_cooldown_s=0, down_delay_s=0, hysteresis=0.2))
    assert policy.decide(Observation(now=0, current=2, backlog=55)).target == 5
    assert policy.decide(Observation(now=1, current=5, backlog=45)).target == 5  # ≥ 40
    assert policy.decide(Observation(now=2, current=5, backlog=39)).target == 3


def test_noisy_spikes_scale_up_once_and_down_once() -> None:
    policy = Policy(PolicyConfig(up_cooldown_s=20, down_delay_s=60))
    current, changes = 2, 0
    for step in range(60):
        backlog = 150 if step % 7 == 0 else 3
        target = policy.decide(Observation(now=step * 2.0, current=current, backlog=backlog)).target
        changes += target != current
        current = target
    # Up to 10 at once; the spikes every 14 s keep it there (no down-up-down churn).
    assert current == 10
    assert changes == 1


def test_decision_says_why() -> None:
    decision = Policy(INSTANT).decide(Observation(now=0, current=2, backlog=150, cpu_pct=80))
    assert decision.changed
    assert "backlog 150" in decision.reason


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="above max"):
        PolicyConfig(min_workers=5, max_workers=2)


def test_negative_minimum_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="≥ 0"):
        PolicyConfig(min_workers=-1)


def test_backlog_steps_parse_and_reject_garbage() -> None:
    assert parse_backlog_steps("50:5, 20:3,100:10") == ((20, 3), (50, 5), (100, 10))
    with pytest.raises(ConfigurationError, match="BACKLOG:WORKERS"):
        parse_backlog_steps("20=3")


def test_a_sleeping_profile_wakes_for_any_work() -> None:
    config = PolicyConfig(min_workers=0, max_workers=4, up_cooldown_s=0, down_delay_s=0)
    assert want(0, current=0, config=config) == 0
    assert want(1, current=0, config=config) == 1
