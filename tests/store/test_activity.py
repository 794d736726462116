"""The dashboard's store queries on both back ends: payload search, activity slices, batches."""

from __future__ import annotations

from tests.store.test_merge import numbered
from tests.store.test_repository import seed

from conveyor.events import new_event
from conveyor.store import JobStore
from conveyor.store.activity import activity, recent_batches


def test_payload_match_compares_as_text(store: JobStore) -> None:
    seed(store)
    found, _ = store.list_jobs(payload_match=("i", "7"))
    assert [r.id for r in found] == ["job-07"]
    assert store.list_jobs(payload_match=("i", "x"))[0] == []
    assert store.list_jobs(payload_match=("missing", "7"))[0] == []


def test_until_bounds_created_at(store: JobStore) -> None:
    seed(store)
    found, _ = store.list_jobs(since=1003.0, until=1006.0)
    assert [r.id for r in found] == ["job-05", "job-04", "job-03"]


def test_activity_counts_each_slice_by_outcome(store: JobStore) -> None:
    seed(store)  # jobs created at 1000..1024, every 5th failed, the rest queued
    view = activity(store, 1000.0, 1025.0, 5)
    assert [b.start for b in view.buckets] == [1000.0, 1005.0, 1010.0, 1015.0, 1020.0]
    assert [(b.failed, b.other) for b in view.buckets] == [(1, 4)] * 5
    assert view.buckets[0].failure_rate == 1.0
    assert view.totals == {"failed": 5, "queued": 20}
    tenant = activity(store, 1000.0, 1025.0, 5, tenant="acme")
    assert sum(b.failed + b.other for b in tenant.buckets) == 9


def test_recent_batches_count_their_jobs(store: JobStore) -> None:
    events = []
    for i in range(3):
        queued = new_event("queued", f"j{i}", "a", "q", batch_id="b1", batch_total=3)
        queued["ts"] = 1000.0 + i
        events.append(queued)
    events.append(new_event("succeeded", "j0", "a", "q"))
    store.record(numbered(events))
    (batch,) = recent_batches(store)
    assert batch.id == "b1" and batch.total == 3
    assert batch.counts == {"queued": 2, "succeeded": 1}
    assert recent_batches(store, tenant="nobody") == []
