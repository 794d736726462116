"""Retry policy: the backoff schedule, its cap and jitter, and which errors are retried."""

from __future__ import annotations

import statistics

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from pydantic import BaseModel

from conveyor import Conveyor, Settings
from conveyor.errors import ConfigurationError, PayloadInvalid, PermanentError, TransientError
from conveyor.jobs import DEFAULT_TRANSIENT, JobContext, backoff_delay
from conveyor.middleware.retries import is_transient


def test_default_schedule_is_60_180_540_with_ten_percent_jitter() -> None:
    settings = Settings()
    assert settings.default_backoff_s == (60.0, 180.0, 540.0)
    assert settings.backoff_max_s == 600.0 and settings.backoff_jitter == 0.1
    for attempt, step in enumerate((60.0, 180.0, 540.0)):
        delays = [backoff_delay(settings.default_backoff_s, attempt, 600.0) for _ in range(300)]
        assert all(step * 0.9 <= d <= step * 1.1 for d in delays)
        assert len(set(delays)) > 250, "jitter spreads the retries"
        assert statistics.mean(delays) == pytest.approx(step, rel=0.03)


def test_the_last_step_repeats_and_never_passes_the_cap() -> None:
    schedule = (60.0, 180.0, 540.0)
    assert 486 <= backoff_delay(schedule, 7, 600.0) <= 594
    capped = [backoff_delay((60.0, 900.0), 3, 600.0) for _ in range(300)]
    assert all(540.0 <= d <= 600.0 for d in capped)
    assert len(set(capped)) > 250, "retries at the cap are still spread, not piled on it"


def test_a_number_is_an_exponential_base() -> None:
    assert [backoff_delay(2.0, n, 600.0, jitter=0) for n in range(4)] == [2.0, 6.0, 18.0, 54.0]
    assert backoff_delay(2.0, 10, 600.0, jitter=0) == 600.0
    assert backoff_delay(2.0, 10_000, 600.0, jitter=0) == 600.0


def test_backoff_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DEFAULT_BACKOFF_S", "0.2, 0.4")
    monkeypatch.setenv("CONVEYOR_BACKOFF_JITTER", "0")
    monkeypatch.setenv("CONVEYOR_DEFAULT_RETRIES", "5")
    settings = Settings.load()
    assert settings.default_backoff_s == (0.2, 0.4) and settings.backoff_jitter == 0
    assert settings.default_retries == 5
    monkeypatch.setenv("CONVEYOR_BACKOFF_JITTER", "1.5")
    with pytest.raises(ConfigurationError, match="CONVEYOR_BACKOFF_JITTER"):
        Settings.load()


class Empty(BaseModel):
    pass


def test_which_errors_are_retried(app: Conveyor) -> None:
    class QuotaExceeded(Exception):
        pass

    def job(ctx: JobContext, params: Empty) -> None:
        pass

    app.job("t.default")(job)
    app.job("t.custom", transient=[QuotaExceeded])(job)
    default, custom = app.definition("t.default"), app.definition("t.custom")
    assert (ConnectionError, TimeoutError, OSError) == DEFAULT_TRANSIENT
    for exc in (ConnectionError(), TimeoutError(), OSError(), TransientError("x")):
        assert is_transient(default, exc)
    for exc in (ValueError(), PermanentError("x"), PayloadInvalid("t", []), QuotaExceeded()):
        assert not is_transient(default, exc)
    # A job type's own list replaces the defaults; the explicit classes always win.
    assert is_transient(custom, QuotaExceeded()) and not is_transient(custom, ConnectionError())
    assert is_transient(custom, TransientError("x")) and not is_transient(
        custom, PermanentError("x")
    )
    # Time limits count as transient: the attempt is retried by the job type's policy.
    for exc in (SoftTimeLimitExceeded(), TimeLimitExceeded(2.0)):
        assert is_transient(default, exc) and is_transient(custom, exc)


def test_retries_per_type_or_from_settings(app: Conveyor) -> None:
    def job(ctx: JobContext, params: Empty) -> None:
        pass

    app.job("t.none", retries=0)(job)
    app.job("t.unset")(job)
    assert app.retries_for(app.definition("t.none")) == 0
    assert app.retries_for(app.definition("t.unset")) == app.settings.default_retries == 3
