"""ffmpeg's machine-readable progress (``-progress pipe:1``), parsed.

ffmpeg writes a block of ``key=value`` lines about twice a second, ending in
``progress=continue`` (or ``progress=end`` at the end)::

    frame=120
    fps=59.8
    out_time_us=4000000
    speed=1.99x
    progress=continue
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """One progress block."""

    out_time_s: float
    frame: int | None = None
    fps: float | None = None
    speed: float | None = None
    done: bool = False

    def percent(self, duration_s: float | None) -> float | None:
        """Output time as a share of ``duration_s`` (0–100), or None when unknown."""
        if not duration_s or duration_s <= 0:
            return None
        return max(0.0, min(100.0, 100.0 * self.out_time_s / duration_s))

    def describe(self) -> str:
        """A short human line: ``4.0s · 59.8 fps · 1.99x``."""
        parts = [f"{self.out_time_s:.1f}s"]
        if self.fps:
            parts.append(f"{self.fps:g} fps")
        if self.speed:
            parts.append(f"{self.speed:g}x")
        return " · ".join(parts)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip().removesuffix("x")
    try:
        return float(text)
    except ValueError:  # "N/A" before the first frame
        return None


class ProgressParser:
    """Feed it lines; it returns a :class:`Snapshot` at the end of each block."""

    def __init__(self) -> None:
        self._block: dict[str, str] = {}

    def feed(self, line: str) -> Snapshot | None:
        """Take one line; a snapshot when the line closes a block, else None."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key != "progress":
            self._block[key] = value.strip()
            return None
        block, self._block = self._block, {}
        micros = _number(block.get("out_time_us")) or _number(block.get("out_time_ms"))
        frame = _number(block.get("frame"))
        return Snapshot(
            out_time_s=max(0.0, (micros or 0.0) / 1_000_000),
            frame=int(frame) if frame is not None else None,
            fps=_number(block.get("fps")),
            speed=_number(block.get("speed")),
            done=value.strip() == "end",
        )
