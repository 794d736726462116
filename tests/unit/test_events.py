"""The typed :class:`Event`: read off the wire exactly as written, malformed input refused
with the reasons the recorder logs, unknown fields kept."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from conveyor.events import TERMINAL, Event, EventKind, MalformedEvent, new_event
from conveyor.state import STATUSES
from conveyor.store import merge

W = {"attempt": 1, "deliveries": 2, "worker": "processing-1@host"}


def wire(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def test_every_job_status_is_a_kind() -> None:
    assert set(STATUSES) | {"progress"} <= {kind.value for kind in EventKind}
    assert {kind for kind in EventKind if Event(kind, "j", 1.0).terminal} == TERMINAL


def test_a_read_event_keeps_its_wire_form_exactly() -> None:
    written = new_event(
        "succeeded", "j1", "diag.sleep", "processing", result=None, runtime_s=0.5, future=[1], **W
    )
    event = Event.from_stream({b"e": wire(written)})
    assert event.fields() == written  # a null result and an unknown field included
    assert event.has("result") and not event.has("error_type")
    assert json.loads(event.to_json()) == written
    assert Event.from_json(event.to_json()) == event
    event.fields()["job_id"] = "changed"
    mine = dict(written)
    from_mine = Event.from_dict(mine)
    mine["job_id"] = "changed"
    assert event.fields() == written and from_mine.fields() == written


def test_fields_are_typed() -> None:
    written = new_event(
        "progress", "j1", "t", "q", progress=50, stage="", message="half", priority=3, **W
    )
    event = Event.from_json(wire(written))
    assert event.kind is EventKind.PROGRESS and event.kind == "progress"
    assert event.status is EventKind.STARTED and not event.terminal and event.is_job_event
    assert (event.progress, event.stage, event.message) == (50.0, None, "half")
    assert isinstance(event.progress, float) and isinstance(event.priority, int)
    assert (event.attempt, event.deliveries, event.worker) == (1, 2, "processing-1@host")
    assert event.result is None and event.error_type is None and event.tags is None
    queued = Event.from_dict(new_event("queued", "j2", "t", "q", tags=["a"], batch_total=2))
    assert queued.tags == ("a",) and queued.batch_total == 2 and queued.attempt == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        queued.job_id = "other"  # type: ignore[misc]


def test_an_event_built_here_round_trips() -> None:
    event = Event(
        EventKind.FAILED,
        "j3",
        1700000000.25,
        job_type="t",
        queue="q",
        error_type="ValueError",
        error_message="bad",
        tags=("x",),
    )
    fields = event.fields()
    assert fields["type"] == "failed" and fields["tags"] == ["x"] and "worker" not in fields
    assert Event("failed", "j3", 1700000000.25, job_type="t", queue="q").kind is EventKind.FAILED  # type: ignore[arg-type]
    assert Event.from_json(event.to_json()) == event
    moved = dataclasses.replace(Event.from_dict(fields), error_message="worse")
    assert moved.fields()["error_message"] == "worse"  # a copy is not its source's wire form


def test_dead_letter_events() -> None:
    replayed = Event.from_dict(
        {"v": 1, "type": "dead_letter_replayed", "job_id": "d", "replayed_as": "n", "ts": 2}
    )
    assert replayed.replayed_as == "n" and replayed.status is None and not replayed.is_job_event
    purged = Event.from_dict({"v": 1, "type": "dead_letter_purged", "job_id": "d", "ts": 2})
    assert purged.kind is EventKind.DEAD_LETTER_PURGED and purged.job_type is None


# A fixed time: the test ids show it, and parallel runs must collect the same ids.
GOOD = {**new_event("progress", "y", "t", "q", progress=1.0), "ts": 1796236080.5}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (wire({**GOOD, "type": "exploded"}), "unknown type 'exploded'"),
        (wire({**GOOD, "type": ["progress"]}), "unknown type"),
        (wire({k: v for k, v in GOOD.items() if k != "job_id"}), "missing job_id"),
        (wire({**GOOD, "job_id": 7}), "job_id is not a string"),
        (wire({k: v for k, v in GOOD.items() if k != "ts"}), "missing ts"),
        (wire({**GOOD, "ts": True}), "ts is not a number"),
        (wire({**GOOD, "queue": ""}), "missing queue"),
        (wire({**GOOD, "attempt": "many"}), "attempt is not a number"),
        (wire({**GOOD, "progress": math.inf}), "progress is not a number"),
        (wire({**GOOD, "stage": 3}), "stage is not a string"),
        (wire({**GOOD, "worker": ["w"]}), "worker is not a string"),
        (b'{"v":1,"type":"dead_letter_replayed","job_id":"d","ts":1}', "missing replayed_as"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        Event.from_json(raw)
    with pytest.raises(MalformedEvent, match=reason):
        Event.from_stream({"e": raw})


def test_malformed_stream_entries() -> None:
    with pytest.raises(MalformedEvent, match="trimmed"):
        Event.from_stream({})
    with pytest.raises(MalformedEvent, match="no field 'e'"):
        Event.from_stream({b"other": b"field"})
    assert merge.MalformedEvent is MalformedEvent and issubclass(MalformedEvent, ValueError)


def test_fields_the_store_does_not_record_are_read_leniently() -> None:
    # As before typed events: only what becomes a column is checked, per event type.
    started = Event.from_dict(
        {**new_event("started", "j", "t", "q"), "stage": 3, "progress": "x", "runtime_s": "1s"}
    )
    assert (started.stage, started.progress, started.runtime_s) == (None, None, None)
    assert started.fields()["stage"] == 3  # still passed on as written
    text = json.dumps({**GOOD, "message": "\ud800"})  # json.dumps' escape of a lone surrogate
    assert Event.from_json(text).message == "\ud800"


def test_the_store_row_reads_the_typed_event() -> None:
    retrying = Event.from_dict(new_event("retrying", "j", "t", "q", retry_in_s=2.0, **W))
    row = merge.job_row(5, retrying)
    assert row["due_at"] == retrying.ts + 2.0 and row["status"] == "retrying"
    assert row["created_at"] == retrying.ts and row["state_sid"] == 5
    report = merge.job_row(6, Event.from_dict({**GOOD, "stage": "", "message": "m"}))
    assert (report["status"], report["progress"], report["stage"]) == ("started", 1.0, None)
    assert merge.as_event(retrying) is retrying
