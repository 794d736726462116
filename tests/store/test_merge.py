"""Recording events: every change lands, in any order, any number of times, same result."""

from __future__ import annotations

import random
from typing import Any

from tests.store.conftest import lifecycle

from conveyor import keys
from conveyor.events import EventWriter, new_event
from conveyor.store import JobStore
from conveyor.store.merge import sid_number

W = {"deliveries": 1, "worker": "w-1@host"}


def numbered(events: list[dict[str, Any]], start: int = 1) -> list[tuple[int, dict[str, Any]]]:
    """Events with consecutive stream ids, as the stream would hold them."""
    return [(sid_number(f"{1_700_000_000_000 + i}-0"), e) for i, e in enumerate(events, start)]


def retried_then_succeeded(job_id: str) -> list[dict[str, Any]]:
    """queued → started → progress → retrying → queued (attempt 1) → started → succeeded."""
    return [
        new_event("queued", job_id, "t", "q", priority=5, payload={"a": 1}, idempotency_key="k"),
        new_event("started", job_id, "t", "q", attempt=0, **W),
        new_event("progress", job_id, "t", "q", attempt=0, progress=40.0, stage="one", **W),
        new_event(
            "retrying",
            job_id,
            "t",
            "q",
            attempt=0,
            error_type="IOError",
            error_message="x",
            traceback="tb",
            retry_in_s=2.0,
            **W,
        ),
        new_event("queued", job_id, "t", "q", priority=5, attempt=1),
        new_event("started", job_id, "t", "q", attempt=1, deliveries=2, worker="w-2@host"),
        new_event(
            "progress",
            job_id,
            "t",
            "q",
            attempt=1,
            progress=80.0,
            stage="two",
            deliveries=2,
            worker="w-2@host",
        ),
        new_event(
            "succeeded",
            job_id,
            "t",
            "q",
            attempt=1,
            result={"ok": True},
            deliveries=2,
            worker="w-2@host",
        ),
    ]


def test_every_state_change_lands(store: JobStore) -> None:
    events = retried_then_succeeded("j1")
    for index in range(1, len(events) + 1):
        store.record(numbered(events[:index]))
        record = store.get_job("j1")
        assert record is not None
        expected = (
            "started" if events[index - 1]["type"] == "progress" else events[index - 1]["type"]
        )
        assert record.status == expected
    record = store.get_job("j1")
    assert record is not None
    assert (record.status, record.attempt, record.deliveries) == ("succeeded", 1, 2)
    assert record.worker == "w-2@host"
    assert record.payload == {"a": 1} and record.priority == 5 and record.idempotency_key == "k"
    assert record.result == {"ok": True} and record.progress == 100.0 and record.stage == "two"
    assert record.error_type is None, "success clears an earlier attempt's error"
    assert record.created_at == events[0]["ts"]
    assert record.started_at == events[5]["ts"] and record.finished_at == events[7]["ts"]
    state = record.to_state()
    assert state.done and state.run_s is not None and state.run_s >= 0


def test_any_order_gives_the_same_row(store: JobStore) -> None:
    events = numbered(retried_then_succeeded("ordered"))
    store.record(events)
    expected = store.get_job("ordered")
    assert expected is not None
    rng = random.Random(7)
    for trial in range(12):
        job_id = f"shuffled-{trial}"
        copies = [(sid, dict(event, job_id=job_id)) for sid, event in events]
        rng.shuffle(copies)
        for item in copies:  # one transaction each: as two recorders or a claim would
            store.record([item])
        record = store.get_job(job_id)
        assert record is not None
        assert record.model_dump(exclude={"id"}) == expected.model_dump(exclude={"id"}), copies


def test_redelivered_event_changes_nothing(store: JobStore) -> None:
    events = numbered(lifecycle("j2", steps=3))
    store.record(events)
    before = store.get_job("j2")
    store.record(events)
    store.record(events[1:3])
    assert store.get_job("j2") == before
    assert store.count_by_status() == {"succeeded": 1}


def test_late_progress_never_moves_a_succeeded_job_back(store: JobStore) -> None:
    events = lifecycle("j3", steps=1)
    late = new_event("progress", "j3", "diag.sleep", "processing", progress=10.0, stage="late", **W)
    late_start = new_event("started", "j3", "diag.sleep", "processing", deliveries=2, worker="x")
    store.record(numbered([*events, late, late_start]))
    record = store.get_job("j3")
    assert record is not None
    assert (record.status, record.progress, record.stage) == ("succeeded", 100.0, "s1")
    assert record.worker == "w-1@host"


def test_older_attempt_never_overwrites_a_newer_one(store: JobStore) -> None:
    newer = new_event("started", "j4", "t", "q", attempt=2, deliveries=3, worker="new")
    older = new_event(
        "retrying", "j4", "t", "q", attempt=1, error_type="E", error_message="old", **W
    )
    store.record(numbered([newer, older]))
    record = store.get_job("j4")
    assert record is not None
    assert (record.status, record.attempt, record.error_type) == ("started", 2, None)


def test_a_late_submission_event_only_fills_in_what_the_submitter_knows(store: JobStore) -> None:
    job = lifecycle("j5", steps=0)
    queued, rest = job[0], job[1:]
    # The submitter's event reached the stream after a fast worker finished the job.
    store.record(numbered([*rest, queued]))
    record = store.get_job("j5")
    assert record is not None
    assert record.status == "succeeded"
    assert record.payload == {"n": "j5"} and record.priority == 3
    assert record.created_at == queued["ts"]


def test_a_failed_job_gets_a_dead_letter_with_its_input(store: JobStore) -> None:
    job = lifecycle("j6", outcome="failed")
    job[0]["tenant"] = "acme"
    events = numbered(job)
    store.record([events[-1]])  # the failure recorded before the submission
    letter = store.get_dead_letter("j6")
    assert letter is not None and letter.payload is None
    store.record(events[:-1])
    letter = store.get_dead_letter("j6")
    assert letter is not None
    assert letter.payload == {"n": "j6"} and letter.tenant == "acme"
    assert (letter.error_type, letter.error_message, letter.traceback) == (
        "ValueError",
        "bad",
        "Traceback…",
    )
    assert letter.expires_at == letter.failed_at + store.settings.dead_letter_retention_s
    assert store.get_dead_letter("j6") == letter


def test_dead_letter_replay_and_purge_events(store: JobStore) -> None:
    failed = numbered(lifecycle("d1", outcome="failed") + lifecycle("d2", outcome="failed"))
    store.record(failed)
    replayed = {
        "v": 1,
        "type": "dead_letter_replayed",
        "job_id": "d1",
        "replayed_as": "n1",
        "ts": 1.0,
    }
    purged = {"v": 1, "type": "dead_letter_purged", "job_id": "d2", "ts": 2.0}
    store.record(numbered([replayed, purged], start=100))
    letter = store.get_dead_letter("d1")
    assert letter is not None and (letter.replayed_as, letter.replayed_at) == ("n1", 1.0)
    assert store.get_dead_letter("d2") is None
    assert store.list_dead_letters() == []
    assert [d.job_id for d in store.list_dead_letters(include_replayed=True)] == ["d1"]


def test_submission_fields_are_stored(store: JobStore) -> None:
    queued = new_event(
        "queued",
        "j7",
        "t",
        "q",
        payload={},
        tenant="acme",
        batch_id="b1",
        replay_of="old",
        batch_total=2,
        tags=["x"],
    )
    store.record(numbered([queued]))
    record = store.get_job("j7")
    assert record is not None
    assert (record.tenant, record.batch_id, record.replay_of, record.tags) == (
        "acme",
        "b1",
        "old",
        ["x"],
    )
    batch = store.get_batch("b1")
    assert batch is not None and batch.total == 2 and batch.counts == {"queued": 1}


def test_a_batch_of_many_reports_gives_the_same_row_as_one_by_one(store: JobStore) -> None:
    events = numbered(lifecycle("batched", steps=20))
    store.record(events)
    for sid, event in events:
        store.record([(sid, dict(event, job_id="single"))])
    batched, single = store.get_job("batched"), store.get_job("single")
    assert batched is not None and single is not None
    assert batched.model_dump(exclude={"id"}) == single.model_dump(exclude={"id"})
    partial = numbered(lifecycle("partial", steps=20)[:12])
    store.record(partial)
    record = store.get_job("partial")
    assert record is not None and (record.progress, record.stage) == (
        partial[-1][1]["progress"],
        "s10",
    )


def test_the_live_state_script_and_the_sql_merge_agree_on_every_change(
    store: JobStore, writer: EventWriter
) -> None:
    """One rank table (events.RANK, TERMINAL_RANK) drives both: for any state and any next
    change (older, same or newer attempt), the live state and the stored row end the same."""
    kinds = ["queued", "scheduled", "started", "retrying", "succeeded", "failed", "cancelled"]
    pairs = []
    for first in kinds:
        for second in kinds:
            for delta in (-1, 0, 1):
                job_id = f"{first}-{second}-{delta}"
                pairs.append(
                    (
                        job_id,
                        new_event(first, job_id, "t", "q", attempt=1),  # type: ignore[arg-type]
                        new_event(second, job_id, "t", "q", attempt=1 + delta),  # type: ignore[arg-type]
                    )
                )
    events = []
    for _, first_event, second_event in pairs:
        writer.emit(first_event)
        writer.emit(second_event)
        events += [first_event, second_event]
    store.record(numbered(events))
    for job_id, _, _ in pairs:
        live = writer.client.hget(keys.job(job_id), "status")
        record = store.get_job(job_id)
        assert record is not None and live is not None
        assert record.status == live.decode(), job_id
