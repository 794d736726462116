"""Charts drawn on the server as inline SVG: no script, no download, readable with JS off.

The chart scales with its box (the view box keeps its aspect, so text never
stretches). Colours come from CSS classes (``bar-ok``, ``bar-fail``, ``line-rate``), so the
light and dark themes style them.
"""

from __future__ import annotations

import time
from html import escape

from markupsafe import Markup

from conveyor.store.activity import Activity

WIDTH = 1200
HEIGHT = 170
PAD_LEFT = 36
PAD_BOTTOM = 20


def _clock(stamp: float) -> str:
    return time.strftime("%H:%M", time.gmtime(stamp))


def throughput(activity: Activity, title: str = "Jobs per slice and failure rate") -> Markup:
    """Stacked bars (succeeded, failed) per time slice, and the failure rate as a line."""
    buckets = activity.buckets
    top = max((b.finished for b in buckets), default=0) or 1
    plot_w = WIDTH - PAD_LEFT - 8
    plot_h = HEIGHT - PAD_BOTTOM - 8
    step = plot_w / max(1, len(buckets))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{PAD_LEFT}" y1="{8 + plot_h}" x2="{WIDTH - 8}" '
        f'y2="{8 + plot_h}"/>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="14" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{8 + plot_h}" text-anchor="end">0</text>',
    ]
    points = []
    for i, bucket in enumerate(buckets):
        x = PAD_LEFT + i * step + 1
        ok_h = plot_h * bucket.succeeded / top
        fail_h = plot_h * bucket.failed / top
        base = 8 + plot_h
        label = (
            f"{_clock(bucket.start)}: {bucket.succeeded} succeeded, {bucket.failed} failed, "
            f"{bucket.other} other"
        )
        parts.append(f"<g><title>{escape(label)}</title>")
        parts.append(
            f'<rect class="bar-ok" x="{x:.1f}" y="{base - ok_h:.1f}" '
            f'width="{max(1.0, step - 2):.1f}" height="{ok_h:.1f}"/>'
        )
        parts.append(
            f'<rect class="bar-fail" x="{x:.1f}" y="{base - ok_h - fail_h:.1f}" '
            f'width="{max(1.0, step - 2):.1f}" height="{fail_h:.1f}"/></g>'
        )
        if bucket.failure_rate is not None:
            points.append(f"{x + step / 2:.1f},{8 + plot_h * (1 - bucket.failure_rate):.1f}")
    if len(points) > 1:
        parts.append(f'<polyline class="line-rate" points="{" ".join(points)}"/>')
    for i in (0, len(buckets) // 2, len(buckets) - 1):
        if 0 <= i < len(buckets):
            x = PAD_LEFT + i * step
            parts.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 4}">{_clock(buckets[i].start)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
