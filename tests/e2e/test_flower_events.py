"""An unmodified Celery event receiver (what Flower runs) sees every job's life."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery

from conveyor import Conveyor
from conveyor.testing import WorkerProcess, wait_until


@contextmanager
def receiver(broker_url: str) -> Iterator[tuple[Celery, Any, list[dict[str, Any]]]]:
    """A Celery event receiver in a thread: (its app, its State, every event seen)."""
    monitor = Celery("monitor", broker=broker_url, set_as_current=False)
    state = monitor.events.State()
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    ready = threading.Event()

    def capture() -> None:
        with monitor.connection() as connection:

            def on_event(event: dict[str, Any]) -> None:
                seen.append(event)
                state.event(event)

            events = monitor.events.Receiver(connection, handlers={"*": on_event})
            events.should_stop = False
            ready.set()
            for _ in events.itercapture(limit=None, timeout=None, wakeup=False):
                if stop.is_set():
                    break

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    ready.wait(10)
    wait_until(
        lambda: any(e["type"] == "worker-heartbeat" for e in seen),
        timeout=30,
        what="a worker heartbeat (the receiver is subscribed)",
    )
    try:
        yield monitor, state, seen
    finally:
        stop.set()


def test_celery_event_receiver_sees_sent_received_started_succeeded_and_failed(
    app: Conveyor, broker_url: str, worker: WorkerProcess
) -> None:
    with receiver(broker_url) as (_, state, seen):
        good = app.submit("diag.noop", {})
        bad = app.submit("diag.flaky", {"fail_times": 1, "permanent": True})
        good.wait(timeout=30)
        bad.wait(timeout=30)
        wait_until(
            lambda: state.tasks.get(bad.id) is not None and state.tasks[bad.id].state == "FAILURE",
            timeout=30,
            what="the failure event",
        )
        wait_until(
            lambda: (
                state.tasks.get(good.id) is not None and state.tasks[good.id].state == "SUCCESS"
            ),
            timeout=30,
            what="the success event",
        )

    kinds = [e["type"] for e in seen if e.get("uuid") == good.id]
    assert kinds == ["task-sent", "task-received", "task-started", "task-succeeded"]
    task = state.tasks[good.id]
    assert task.name == "diag.noop"
    assert task.worker is not None and task.worker.hostname == worker.name
    assert "PermanentError" in (state.tasks[bad.id].exception or "")


def test_with_celerys_own_task_events_on_a_failed_job_still_shows_failure(
    app: Conveyor, broker_url: str, worker: WorkerProcess
) -> None:
    # Flower switches on Celery's task events in every worker when it starts; Celery
    # would then report success for a job whose function returned after Conveyor
    # recorded its failure.
    with receiver(broker_url) as (monitor, state, seen):
        replies = monitor.control.enable_events(reply=True, timeout=5)
        assert replies, "no worker answered enable_events"
        bad = app.submit("diag.flaky", {"fail_times": 1, "permanent": True})
        good = app.submit("diag.noop", {})
        assert bad.wait(timeout=30).status == "failed"
        good.wait(timeout=30)
        wait_until(
            lambda: (
                state.tasks.get(good.id) is not None and state.tasks[good.id].state == "SUCCESS"
            ),
            timeout=30,
            what="the later job's success event",
        )
        monitor.control.disable_events()

    bad_kinds = [e["type"] for e in seen if e.get("uuid") == bad.id]
    assert "task-failed" in bad_kinds
    assert "task-succeeded" not in bad_kinds
    assert state.tasks[bad.id].state == "FAILURE"
    good_kinds = [e["type"] for e in seen if e.get("uuid") == good.id]
    assert good_kinds.count("task-succeeded") == 1
