"""The background loop helper: steps at its interval, survives a failing step, stops promptly."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from conveyor.testing import wait_until
from conveyor.ticker import Ticker


def test_steps_until_stopped_and_a_failing_step_does_not_end_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def step() -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 2:
            raise RuntimeError("boom")

    ticker = Ticker("test-ticker", 0.01, step)
    with caplog.at_level(logging.ERROR, logger="conveyor.ticker"):
        ticker.start()
        wait_until(lambda: len(calls) >= 4, timeout=5, what="steps after the failure")
        ticker.stop()
    assert set(calls) == {"test-ticker"}
    assert any("test-ticker: step failed" in r.getMessage() for r in caplog.records)
    assert "test-ticker" not in {t.name for t in threading.enumerate()}  # joined


def test_waits_first_unless_immediate_and_a_step_sets_the_next_wait() -> None:
    calls: list[float] = []
    late = Ticker("late", 60.0, lambda: calls.append(time.monotonic()) or None)
    late.start()
    late.stop(timeout=5)
    assert calls == []  # stopped during the first wait: never stepped

    # Immediate, then at once again while the step asks for 0 s, then the long interval.
    waits = iter([0.0, 0.0, None])

    def step() -> float | None:
        calls.append(time.monotonic())
        return next(waits)

    ticker = Ticker("soon", 60.0, step, immediate=True)
    ticker.start()
    wait_until(lambda: len(calls) == 3, timeout=5, what="three steps, none waiting 60 s")
    ticker.stop(timeout=5)
    assert len(calls) == 3


def test_stop_interrupts_a_long_wait() -> None:
    ticker = Ticker("idle", 3600.0, lambda: None)
    ticker.start()
    began = time.monotonic()
    ticker.stop(timeout=5)
    assert time.monotonic() - began < 1 and ticker.stopping
