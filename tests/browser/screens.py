"""The dashboard screenshots in docs/images, taken with the browser-test stack.

Run: ``DASHBOARD_SCREENSHOTS=docs/images .venv/bin/python -m pytest tests/browser -k screenshots``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor import scaling
from conveyor.client import batches
from conveyor.testing import wait_until
from tests.browser.conftest import Stack, sign_in


def _populate(stack: Stack) -> Any:
    """Some history: finished, failed and running jobs, a batch, a pin. Returns a running job."""
    app = stack.app
    for i in range(12):
        app.submit("diag.sleep", {"seconds": 0.05 * (i % 4), "steps": 1}, tenant="tenant-a")
    for _ in range(3):
        app.submit("diag.flaky", {"fail_times": 1, "permanent": True}, tenant="tenant-b")
    items = [{"type": "diag.sleep", "payload": {"seconds": 0.1 * i}} for i in range(8)]
    items += [{"type": "diag.sleep", "payload": {"seconds": 120}}]
    batches.submit_batch(app, items, tenant="tenant-a")
    scaling.pin(app, "batch", 1)
    running = app.submit(
        "diag.sleep", {"seconds": 120, "steps": 200}, tenant="tenant-a", tags=["demo"]
    )
    wait_until(
        lambda: float(app.redis.hget(f"conveyor:job:{running.id}", "progress") or 0) >= 4,
        timeout=120,
        what="the demo job under way",
    )
    wait_until(lambda: len(stack.store.list_dead_letters()) >= 3, timeout=120, what="dead letters")
    return running


def capture(browser: Any, stack: Stack, out: Path) -> None:
    """Every page, light; the overview and a job, dark too."""
    out.mkdir(parents=True, exist_ok=True)
    running = _populate(stack)
    pages = {
        "overview": "/",
        "jobs": "/jobs",
        "job": f"/jobs/{running.id}",
        "dead-letters": "/dead-letters",
        "workers": "/workers",
        "batches": "/batches",
        "schedules": "/schedules",
    }
    for scheme in ("light", "dark"):
        context = browser.new_context(
            viewport={"width": 1360, "height": 860}, color_scheme=scheme, device_scale_factor=1
        )
        page = context.new_page()
        if scheme == "light":
            page.goto(f"{stack.url}/login")
            page.screenshot(path=str(out / "dashboard-login.png"))
        sign_in(page, stack, "admin")
        for name, path in pages.items():
            if scheme == "dark" and name not in ("overview", "job"):
                continue
            page.goto(f"{stack.url}{path}")
            # The job page holds its event stream open: the network never goes idle there.
            page.wait_for_selector("main")
            page.wait_for_timeout(1200)
            suffix = "" if scheme == "light" else "-dark"
            page.screenshot(path=str(out / f"dashboard-{name}{suffix}.png"), full_page=False)
        context.close()
    scaling.release(stack.app, "batch")
    running.cancel()
