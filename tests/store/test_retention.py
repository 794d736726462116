"""Retention deletes exactly what has outlived its time, and nothing else."""

from __future__ import annotations

from tests.store.test_merge import numbered

from conveyor.events import new_event
from conveyor.store import JobStore

DAY = 86400.0


def test_retention_deletes_exactly_what_it_should(store: JobStore) -> None:
    now = 100 * DAY
    retention = store.settings.job_retention_s  # 7 days by default
    assert retention == 7 * DAY == store.settings.dead_letter_retention_s
    plan = {
        # id: (final status, finished this long ago) — None: never finished
        "old-ok": ("succeeded", 8 * DAY),
        "new-ok": ("succeeded", 6 * DAY),
        "old-cancelled": ("cancelled", 8 * DAY),
        "old-failed": ("failed", 8 * DAY),
        "new-failed": ("failed", 6 * DAY),
        "old-started": ("started", None),
        "old-queued": ("queued", None),
    }
    events = []
    for job_id, (status, age) in plan.items():
        queued = new_event("queued", job_id, "t", "q", payload={}, batch_id=f"b-{job_id}")
        queued["ts"] = now - 30 * DAY
        events.append(queued)
        if status != "queued":
            last = new_event(status, job_id, "t", "q", error_type="E", error_message="m")
            last["ts"] = now - (age if age is not None else 29 * DAY)
            events.append(last)
    store.record(numbered(events))
    assert store.count_by_status() == {
        "succeeded": 2,
        "cancelled": 1,
        "failed": 2,
        "started": 1,
        "queued": 1,
    }

    counts = store.apply_retention(now=now, batch_size=1)
    assert (counts.jobs, counts.dead_letters, counts.batches) == (3, 1, 3)
    left = {r.id for r in store.list_jobs(limit=100)[0]}
    assert left == {"new-ok", "new-failed", "old-started", "old-queued"}
    assert [d.job_id for d in store.list_dead_letters()] == ["new-failed"]
    assert store.get_batch("b-old-ok") is None and store.get_batch("b-new-ok") is not None

    again = store.apply_retention(now=now)
    assert (again.jobs, again.dead_letters, again.batches) == (0, 0, 0)


def test_a_failed_job_stays_while_its_dead_letter_lives(store: JobStore) -> None:
    queued = new_event("queued", "kept", "t", "q", payload={})
    failed = new_event("failed", "kept", "t", "q", error_type="E", error_message="m")
    queued["ts"], failed["ts"] = 0.0, 1.0
    store.record(numbered([queued, failed]))
    # The dead letter expires at failed_at + 7 days; a later, shorter setting does not cut it.
    store.settings = store.settings.model_copy(update={"dead_letter_retention_s": 1.0})
    assert store.apply_retention(now=1.0 + 6 * DAY).jobs == 0
    counts = store.apply_retention(now=1.0 + 7 * DAY + 1)
    assert (counts.dead_letters, counts.jobs) == (1, 1)
