"""The dashboard in a real browser: sign-in, live progress, replay, cancel, roles, tenants."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing import wait_until
from tests.browser.conftest import Stack, sign_in


def _status(stack: Stack, job_id: str) -> str | None:
    raw = stack.app.redis.hget(f"conveyor:job:{job_id}", "status")
    return raw.decode() if raw else None


def test_sign_in_and_watch_a_job_progress_live_to_succeeded(page: Any, stack: Stack) -> None:
    sign_in(page, stack, "admin")
    assert page.locator("h1").first.inner_text().startswith("Overview")
    job = stack.app.submit("diag.sleep", {"seconds": 3, "steps": 6})
    page.goto(f"{stack.url}/jobs/{job.id}")
    # A value strictly between 0 and 100 arrives over SSE, with no reload.
    page.wait_for_function(
        "() => { const v = parseInt(document.getElementById('progress-text').textContent);"
        " return v > 0 && v < 100; }"
    )
    page.wait_for_selector("#status .badge.st-succeeded")
    page.wait_for_selector("text=slept_s")  # the reloaded page shows the result
    assert page.locator("#progress-text").inner_text() == "100%"


def test_cancel_a_running_job(page: Any, stack: Stack) -> None:
    job = stack.app.submit("diag.sleep", {"seconds": 60, "steps": 60})
    wait_until(lambda: _status(stack, job.id) == "started", timeout=60, what="job started")
    sign_in(page, stack, "admin", then=f"/jobs/{job.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Cancel job')")
    page.wait_for_selector(".notice:has-text('cancelled')")
    wait_until(lambda: _status(stack, job.id) == "cancelled", timeout=60, what="job cancelled")
    page.reload()
    page.wait_for_selector("#status .badge.st-cancelled")


def test_replay_a_dead_letter(page: Any, stack: Stack) -> None:
    job = stack.app.submit("diag.flaky", {"fail_times": 1, "permanent": True})
    wait_until(
        lambda: stack.store.get_dead_letter(job.id) is not None, timeout=60, what="dead letter"
    )
    sign_in(page, stack, "admin", then="/dead-letters")
    page.check(f"input[value='{job.id}']")
    page.click("button:has-text('Replay selected')")
    page.wait_for_selector("h1:has-text('Replay 1 dead letter?')")
    page.click("button:has-text('Yes, replay')")
    page.wait_for_selector(".notice:has-text('replayed 1 dead letter')")

    def replayed() -> bool:
        letter = stack.store.get_dead_letter(job.id)
        return letter is not None and letter.replayed_as is not None

    wait_until(replayed, timeout=60, what="replay recorded")


def test_a_read_only_key_sees_no_action_buttons(page: Any, stack: Stack) -> None:
    job = stack.app.submit("diag.sleep", {"seconds": 30, "steps": 30}, tenant="tenant-a")
    sign_in(page, stack, "reader", then=f"/jobs/{job.id}")
    page.wait_for_selector("#status .badge")
    assert page.locator("button:has-text('Cancel job')").count() == 0
    assert page.locator("text=read-only").count() == 1
    page.goto(f"{stack.url}/dead-letters")
    assert page.locator("button:has-text('Replay selected')").count() == 0
    assert page.locator("input[name=job_id]").count() == 0
    job.cancel()


def test_another_tenants_job_is_not_found(page: Any, stack: Stack) -> None:
    job = stack.app.submit("diag.noop", {}, tenant="tenant-a")
    sign_in(page, stack, "b", then="/jobs")
    reply = page.goto(f"{stack.url}/jobs/{job.id}")
    assert reply is not None and reply.status == 404
    assert page.locator("h1").inner_text() == "Not found"


@pytest.mark.skipif(
    not os.environ.get("DASHBOARD_SCREENSHOTS"),
    reason="set DASHBOARD_SCREENSHOTS=docs/images to refresh the dashboard screenshots",
)
def test_screenshots(browser: Any, stack: Stack) -> None:
    """Not a check: takes the screenshots in docs/ (light and dark)."""
    from tests.browser.screens import capture

    capture(browser, stack, Path(os.environ["DASHBOARD_SCREENSHOTS"]))
