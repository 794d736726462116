"""An unmodified Celery event receiver (what Flower runs) sees every job's life."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery

from conveyor import Conveyor
from conveyor.testing import WorkerProcess, wait_until


def test_celery_event_receiver_sees_sent_received_started_succeeded_and_failed(
    app: Conveyor, broker_url: str, worker: WorkerProcess
) -> None:
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

            receiver = monitor.events.Receiver(connection, handlers={"*": on_event})
            receiver.should_stop = False
            ready.set()
            for _ in receiver.itercapture(limit=None, timeout=None, wakeup=False):
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
        lambda: state.tasks.get(good.id) is not None and state.tasks[good.id].state == "SUCCESS",
        timeout=30,
        what="the success event",
    )
    stop.set()

    kinds = [e["type"] for e in seen if e.get("uuid") == good.id]
    assert kinds == ["task-sent", "task-received", "task-started", "task-succeeded"]
    task = state.tasks[good.id]
    assert task.name == "diag.noop"
    assert task.worker is not None and task.worker.hostname == worker.name
    assert "PermanentError" in (state.tasks[bad.id].exception or "")
