"""The figures a run reports, computed the same way for every queue."""

from __future__ import annotations


def steady_rate(times: list[float]) -> float | None:
    """Jobs/s between the 10th and 90th percentile start: no worker boot, no tail."""
    ordered = sorted(times)
    lo, hi = int(0.1 * len(ordered)), int(0.9 * len(ordered)) - 1
    if len(ordered) < 10 or ordered[hi] <= ordered[lo]:
        return None
    return (hi - lo) / (ordered[hi] - ordered[lo])


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile (0–100), interpolated between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        return None
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
