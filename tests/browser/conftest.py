"""Browser fixtures: headless Debian Chromium driven by Playwright, against a real stack.

One API server (uvicorn in a thread), one worker subprocess and an in-process
recorder serve the whole module. The browser is the system's ``/usr/bin/chromium``
(never a download); without it every test here is skipped, saying why.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.api import create_app
from conveyor.store.recorder import Recorder
from conveyor.testing import WorkerProcess
from tests.stack import Role, ServerThread, free_port, platform

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    pytest.skip(
        f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need playwright (pip install -e '.[test]')"
)


@dataclass
class Stack:
    """The running API, its app, store and keys by role."""

    url: str
    app: Conveyor
    store: Any
    keys: dict[str, str]


@pytest.fixture(scope="package")
def stack(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API + one processing worker + a recorder thread, on a clean keyspace."""
    home = tmp_path_factory.mktemp("browser-home")
    roles: dict[str, Role] = {
        "admin": ("ops", ["admin"]),
        "reader": ("tenant-a", ["read"]),
        "b": ("tenant-b", ["read"]),
    }
    with platform(broker_url, home, roles, recorder_poll_s=0.1) as base:
        recorder = Recorder(base.store, base.app.redis, consumer="browser-tests", block_s=0.1)
        recording = threading.Thread(target=recorder.run, daemon=True)
        recording.start()
        worker = WorkerProcess(
            broker_url,
            profile="processing",
            concurrency=2,
            queues=["processing", "batch"],
            log_path=home / "worker.log",
            env={"CONVEYOR_HOME": str(home)},
        )
        port = free_port()
        try:
            with ServerThread(create_app(base.app, auth=True), port), worker:
                yield Stack(f"http://127.0.0.1:{port}", base.app, base.store, base.keys)
        finally:
            recorder.stop()
            recording.join(timeout=10)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's)."""
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own cookies) that fails fast."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(float(os.environ.get("BROWSER_TIMEOUT_MS", "30000")))
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Any, stack: Stack, role: str, then: str = "/") -> None:
    """Sign in through the form with the key of ``role``, landing on ``then``."""
    page.goto(f"{stack.url}/login?next={then}")
    page.fill("input[name=api_key]", stack.keys[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.url}{then}")
