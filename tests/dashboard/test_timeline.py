"""The job page's timeline, read off the event stream: a malformed entry is skipped, not a 500."""

from __future__ import annotations

import logging

import pytest

from conveyor import keys
from tests.dashboard.conftest import Dash


def test_a_malformed_event_in_the_jobs_range_is_skipped(
    dash: Dash, caplog: pytest.LogCaptureFixture
) -> None:
    job = dash.app.submit("diag.noop", {}, tenant="tenant-a")
    dash.record()
    needle = f'"job_id":"{job.id}"'
    # Each names the job (so the timeline's byte filter lets it through) yet is no event.
    for bad in (
        "{" + needle + ',"type":"started", truncated',  # not JSON
        "{" + needle + ',"ts":1}',  # no type
        "{" + needle + ',"type":"exploded","ts":1}',  # unknown type
        "{" + needle + ',"type":"started","ts":"soon","job_type":"x","queue":"q"}',
    ):
        dash.app.redis.xadd(keys.EVENTS, {"e": bad})
    dash.app.redis.xadd(keys.EVENTS, {"x": "no field e"})
    with caplog.at_level(logging.WARNING, logger="conveyor.dashboard"):
        page = dash.sign_in("reader").get(f"/jobs/{job.id}")
    assert page.status_code == 200, page.text
    timeline = page.text.split('id="timeline"', 1)[1].split("</ol>", 1)[0]
    assert timeline.count("<li>") == 1 and "queued" in timeline
    assert "from the job store" not in timeline  # the real event was read off the stream
    assert any("4 malformed" in r.getMessage() for r in caplog.records), caplog.text
