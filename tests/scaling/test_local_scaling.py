"""The worker manager on the local back end, with real worker processes on a real broker."""

from __future__ import annotations

import time
from typing import Any

from conveyor import Conveyor
from conveyor.scaling import status
from conveyor.testing import wait_until
from conveyor.worker.heartbeats import live_workers

POLL_S = 1.0


def processing_workers(app: Conveyor) -> list[str]:
    return [
        w.name
        for w in live_workers(app.redis, app.settings.heartbeat_s)
        if w.profile == "processing"
    ]


def view(app: Conveyor) -> dict[str, Any]:
    return dict(status(app)["profiles"].get("processing") or {})


def test_backlog_spike_scales_up_then_back_down_and_every_job_succeeds(
    scaling_app: Conveyor, start_manager: Any
) -> None:
    app = scaling_app
    manager = start_manager("--profiles", "processing")
    wait_until(lambda: len(processing_workers(app)) == 2, timeout=90, what="2 minimum workers")

    # The spike lands in one round trip: a poll that caught it half-submitted would scale
    # to a lower band and then sit out the up-scale cooldown.
    jobs = app.enqueue_submissions(
        [app.submission("diag.sleep", {"seconds": 0.25}, queue="processing") for _ in range(150)]
    )
    spike = time.monotonic()
    # The decision comes within two polling intervals of the spike …
    wait_until(
        lambda: view(app).get("desired", 0) >= 5,
        timeout=2 * POLL_S + 1.5,
        interval=0.05,
        what=f"a scale-up decision\n{manager.log()}",
    )
    decided_s = time.monotonic() - spike
    # … and the new workers are live (started, registered, consuming) soon after.
    wait_until(
        lambda: len(processing_workers(app)) >= 5,
        timeout=90,
        what=f"5 live workers\n{manager.log()}",
    )
    for job in jobs:
        assert job.wait(timeout=180).status == "succeeded"
    wait_until(
        lambda: view(app).get("current") == 2 and len(processing_workers(app)) == 2,
        timeout=90,
        what=f"back to 2 workers\n{manager.log()}",
    )
    decisions = [d for d in status(app)["decisions"] if d["profile"] == "processing"]
    actions = [d["action"] for d in reversed(decisions)]
    assert actions[0] == "scale up" and "backlog" in decisions[-1]["reason"]
    assert actions[-1] == "scale down"
    assert decided_s <= 2 * POLL_S + 1.5
