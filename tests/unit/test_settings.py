from __future__ import annotations

import pytest

from conveyor.errors import ConfigurationError
from conveyor.settings import Settings, mask_url


def test_reads_the_seed_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_WORKER_CONCURRENCY", "12")
    monkeypatch.setenv("CELERY_TASK_SOFT_TIME_LIMIT", "240")
    monkeypatch.setenv("CELERY_TASK_TIME_LIMIT", "300")
    monkeypatch.setenv("CELERY_RESULT_EXPIRES", "3600")
    monkeypatch.setenv("CELERY_MESSAGE_COMPRESSION", "gzip")
    monkeypatch.setenv("MODEL_CACHE_DIR", "/models")
    settings = Settings.load()
    assert settings.worker_concurrency == 12
    assert (settings.soft_time_limit_s, settings.time_limit_s) == (240, 300)
    assert settings.result_expires_s == 3600
    assert settings.message_compression == "gzip"
    assert str(settings.model_cache_dir) == "/models"


def test_invalid_value_names_the_variable_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_WORKER_CONCURRENCY", "lots")
    with pytest.raises(ConfigurationError, match=r"CELERY_WORKER_CONCURRENCY: .*integer.*'lots'"):
        Settings.load()


def test_compression_must_be_a_known_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_MESSAGE_COMPRESSION", "rar")
    with pytest.raises(ConfigurationError, match=r"CELERY_MESSAGE_COMPRESSION: .*gzip"):
        Settings.load()


def test_unknown_conveyor_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_HOMME", "/tmp/x")
    with pytest.raises(ConfigurationError, match=r"unknown setting.*CONVEYOR_HOMME"):
        Settings.load()


def test_soft_limit_must_be_below_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_TASK_SOFT_TIME_LIMIT", "300")
    monkeypatch.setenv("CELERY_TASK_TIME_LIMIT", "300")
    with pytest.raises(ConfigurationError, match="CELERY_TASK_SOFT_TIME_LIMIT must be below"):
        Settings.load()


def test_broker_url_precedence_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_DB", "2")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    assert Settings.load().configured_broker_url == "redis://:s3cret@cache.internal:6380/2"
    monkeypatch.setenv("REDIS_URL", "redis://other:6379/0")
    assert Settings.load().configured_broker_url == "redis://:s3cret@other:6379/0"
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:own@broker:6379/1")
    assert Settings.load().configured_broker_url == "redis://:own@broker:6379/1"


def test_no_broker_configured_means_embedded() -> None:
    assert Settings().configured_broker_url is None


def test_backoff_list_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DEFAULT_BACKOFF_S", "1, 2,4")
    assert Settings.load().default_backoff_s == (1.0, 2.0, 4.0)
    monkeypatch.setenv("CONVEYOR_DEFAULT_BACKOFF_S", "1,-2")
    with pytest.raises(ConfigurationError, match="CONVEYOR_DEFAULT_BACKOFF_S"):
        Settings.load()


def test_mask_url_hides_the_password() -> None:
    assert mask_url("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert mask_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
