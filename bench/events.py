"""Event parsing: what the recorder pays per stream entry, in microseconds.

.venv/bin/python bench/events.py [--number 20000]

Four typical events (queued with a payload, started, progress, succeeded) as the
stream holds them. Reported, best of five runs: ``json.loads`` alone (the floor a
dict reader paid), :meth:`Event.from_stream` (decode, validate, build), and that
plus :func:`conveyor.store.merge.job_row` (the recorder's whole per-event path
before the database).
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

from conveyor.events import Event, new_event
from conveyor.store import merge

W = {"deliveries": 1, "worker": "processing-1@host", "attempt": 0}
SAMPLES = [
    new_event(
        "queued",
        "j-1",
        "diag.sleep",
        "processing",
        priority=5,
        payload={"seconds": 1, "steps": 6},
        created_at=1.0,
    ),
    new_event("started", "j-1", "diag.sleep", "processing", **W),
    new_event(
        "progress", "j-1", "diag.sleep", "processing", progress=50.0, stage="3/6", message="m", **W
    ),
    new_event(
        "succeeded", "j-1", "diag.sleep", "processing", result={"s": 1.0}, runtime_s=1.0, **W
    ),
]
ENTRIES = [{b"e": json.dumps(e, separators=(",", ":")).encode()} for e in SAMPLES]


def per_event_us(fn: Callable[[], None], number: int) -> float:
    """Best of five runs of ``fn`` (which handles every sample once), per event."""
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number / len(ENTRIES) * 1e6


def loads() -> None:
    for entry in ENTRIES:
        json.loads(entry[b"e"])


def parse() -> None:
    for entry in ENTRIES:
        Event.from_stream(entry)


def record_path() -> None:
    for entry in ENTRIES:
        merge.job_row(7, Event.from_stream(entry))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    number = parser.parse_args().number
    for name, fn in [
        ("json.loads", loads),
        ("Event.from_stream", parse),
        ("Event.from_stream + merge.job_row", record_path),
    ]:
        print(f"{name:36s} {per_event_us(fn, number):6.2f} us/event")


if __name__ == "__main__":
    main()
