"""Reliability settings: alert webhook URL, alert queues, dead-letter retention."""

from __future__ import annotations

import pytest

from conveyor import Settings
from conveyor.errors import ConfigurationError


@pytest.mark.parametrize(
    "url",
    ["ftp://alerts.example.com/x", "file:///etc/passwd", "http://", "alerts.example.com/hook"],
)
def test_a_webhook_url_must_be_http_or_https(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("CONVEYOR_ALERT_WEBHOOK_URL", url)
    with pytest.raises(ConfigurationError, match=r"CONVEYOR_ALERT_WEBHOOK_URL.*http"):
        Settings.load()


def test_alert_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ALERT_WEBHOOK_URL", "https://hooks.example.com/T0/B0")
    monkeypatch.setenv("CONVEYOR_ALERT_QUEUES", "generation, processing")
    monkeypatch.setenv("CONVEYOR_DEAD_LETTER_RETENTION", "3d")
    settings = Settings.load()
    assert settings.alert_webhook_url == "https://hooks.example.com/T0/B0"
    assert settings.alert_queues == ("generation", "processing")
    assert settings.dead_letter_retention_s == 3 * 86400


def test_defaults() -> None:
    settings = Settings()
    assert settings.alert_webhook_url is None and settings.alert_queues == ()
    assert settings.alert_retries == 8 and settings.alert_timeout_s == 10
    assert settings.dead_letter_retention_s == 7 * 86400
