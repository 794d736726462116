"""Queries: newest first, filters, keyset pages, counts, dead letters."""

from __future__ import annotations

import inspect
from typing import Any

from tests.store.test_merge import numbered

from conveyor.events import new_event
from conveyor.store import JobStore
from conveyor.store.filters import JobFilters


def seed(store: JobStore) -> list[dict[str, Any]]:
    """25 jobs over two types and queues, one second apart; every 5th failed."""
    events = []
    for i in range(25):
        job_id = f"job-{i:02d}"
        queued = new_event(
            "queued",
            job_id,
            "a" if i % 2 else "b",
            "q1" if i < 10 else "q2",
            payload={"i": i},
            tenant="acme" if i % 3 == 0 else None,
        )
        queued["ts"] = 1000.0 + i
        events.append(queued)
        if i % 5 == 0:
            failed = new_event(
                "failed",
                job_id,
                queued["job_type"],
                queued["queue"],
                error_type="KeyError",
                error_message="k",
            )
            failed["ts"] = 2000.0 + i
            events.append(failed)
    store.record(numbered(events))
    return events


def test_list_is_newest_first_and_pages_by_cursor(store: JobStore) -> None:
    seed(store)
    seen, cursor = [], None
    while True:
        page, cursor = store.list_jobs(limit=7, cursor=cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == [f"job-{i:02d}" for i in range(24, -1, -1)]


def test_iter_jobs_reads_every_page_once_and_stops(store: JobStore) -> None:
    seed(store)
    ids = [r.id for r in store.iter_jobs(page_size=7)]
    assert ids == [f"job-{i:02d}" for i in range(24, -1, -1)]
    assert [r.id for r in store.iter_jobs(status="failed", page_size=2)] == [
        f"job-{i:02d}" for i in (20, 15, 10, 5, 0)
    ]
    # The last page's cursor is None; passing it back would start over at page one.
    _, last = store.list_jobs(limit=100)
    assert last is None


def test_iter_jobs_takes_every_filter_list_jobs_takes(store: JobStore) -> None:
    seed(store)
    cases: list[JobFilters] = [
        {"status": "failed", "tenant": "acme"},
        {"type": "a", "queue": "q2"},
        {"since": 1003.0, "until": 1016.0},
        {"payload_match": ("i", "7")},
        {"since": 1000.0, "until": 1020.0, "status": "queued", "payload_match": ("i", "12")},
    ]
    for filters in cases:
        listed = [r.id for r in store.list_jobs(limit=100, **filters)[0]]
        assert listed, filters
        assert [r.id for r in store.iter_jobs(page_size=2, **filters)] == listed, filters
    # One definition of the filters: both methods take exactly its keys.
    for method in (store.list_jobs, store.iter_jobs):
        taken = set(inspect.signature(method).parameters) - {"limit", "cursor", "page_size"}
        assert taken == {"filters"}, method


def test_list_filters(store: JobStore) -> None:
    seed(store)
    failed, cursor = store.list_jobs(status="failed")
    assert [r.id for r in failed] == ["job-20", "job-15", "job-10", "job-05", "job-00"]
    assert cursor is None
    assert {r.type for r in store.list_jobs(type="a")[0]} == {"a"}
    assert len(store.list_jobs(queue="q1")[0]) == 10
    assert [r.id for r in store.list_jobs(tenant="acme", status="failed")[0]] == [
        "job-15",
        "job-00",
    ]
    assert len(store.list_jobs(since=1020.0)[0]) == 5
    page, cursor = store.list_jobs(status="queued", limit=3)
    assert len(page) == 3 and cursor is not None


def test_counts_by_status(store: JobStore) -> None:
    seed(store)
    assert store.count_by_status() == {"queued": 20, "failed": 5}
    assert store.count_by_status(tenant="acme") == {"queued": 7, "failed": 2}
    assert store.count_by_status(since=1020.0) == {"queued": 4, "failed": 1}


def test_dead_letter_filters(store: JobStore) -> None:
    seed(store)
    letters = store.list_dead_letters()
    assert [d.job_id for d in letters] == ["job-20", "job-15", "job-10", "job-05", "job-00"]
    assert letters[0].payload == {"i": 20}
    assert [d.job_id for d in store.list_dead_letters(queue="q1")] == ["job-05", "job-00"]
    assert [d.job_id for d in store.list_dead_letters(type="a")] == ["job-15", "job-05"]
    assert store.list_dead_letters(error_type="ValueError") == []
    window = store.list_dead_letters(since=2005.0, until=2015.0)
    assert [d.job_id for d in window] == ["job-10", "job-05"]
    assert [d.job_id for d in store.list_dead_letters(tenant="acme", limit=1)] == ["job-15"]


def test_unknown_job_is_none(store: JobStore) -> None:
    assert store.get_job("nope") is None
    assert store.get_dead_letter("nope") is None
    assert store.get_batch("nope") is None
