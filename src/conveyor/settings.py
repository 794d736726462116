"""One settings class for the whole platform.

Every value comes from the environment (or a ``.env`` file in the working
directory) under the names Celery and Redis deployments already use — ``REDIS_URL``,
``CELERY_WORKER_CONCURRENCY``, ``DATABASE_URL`` … — plus Conveyor's own under
``CONVEYOR_``. Durations carry their unit in the field name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from conveyor.errors import ConfigurationError

Compression = Literal["gzip", "bzip2", "zlib", "lzma", "zstd", "brotli"]


def _env(*names: str) -> Any:
    return Field(validation_alias=AliasChoices(*names))


class Settings(BaseSettings):
    """Every setting Conveyor reads, with its environment variable and default."""

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        case_sensitive=True,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    # Local state and application
    home: Path = Field(Path(".conveyor"), validation_alias="CONVEYOR_HOME")
    app: str | None = Field(None, validation_alias="CONVEYOR_APP")
    config_file: Path | None = Field(None, validation_alias="CONVEYOR_CONFIG")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="CONVEYOR_LOG_LEVEL"
    )

    # Broker (the usual Celery and Redis names)
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    redis_host: str | None = Field(None, validation_alias="REDIS_HOST")
    redis_port: int = Field(6379, ge=1, le=65535, validation_alias="REDIS_PORT")
    redis_db: int = Field(0, ge=0, validation_alias="REDIS_DB")
    redis_password: str | None = Field(None, validation_alias="REDIS_PASSWORD")
    celery_broker_url: str | None = Field(None, validation_alias="CELERY_BROKER_URL")
    result_backend: str | None = Field(None, validation_alias="CELERY_RESULT_BACKEND")
    broker_connect_timeout_s: float = Field(
        3.0, gt=0, validation_alias="CONVEYOR_BROKER_CONNECT_TIMEOUT_S"
    )

    # Workers
    worker_concurrency: int | None = Field(None, ge=1, validation_alias="CELERY_WORKER_CONCURRENCY")
    worker_prefetch_multiplier: int = Field(
        1, ge=1, validation_alias="CELERY_WORKER_PREFETCH_MULTIPLIER"
    )
    worker_max_tasks_per_child: int | None = Field(
        None, ge=1, validation_alias="CELERY_WORKER_MAX_TASKS_PER_CHILD"
    )
    worker_max_memory_per_child_kb: int | None = Field(
        None, ge=1, validation_alias="CELERY_WORKER_MAX_MEMORY_PER_CHILD"
    )
    soft_time_limit_s: float = Field(3300, gt=0, validation_alias="CELERY_TASK_SOFT_TIME_LIMIT")
    time_limit_s: float = Field(3600, gt=0, validation_alias="CELERY_TASK_TIME_LIMIT")
    result_expires_s: int = Field(86400, ge=60, validation_alias="CELERY_RESULT_EXPIRES")
    message_compression: Compression | None = Field(
        None, validation_alias="CELERY_MESSAGE_COMPRESSION"
    )
    visibility_timeout_s: float | None = Field(
        None, gt=0, validation_alias="CONVEYOR_VISIBILITY_TIMEOUT_S"
    )
    model_cache_dir: Path | None = Field(None, validation_alias="MODEL_CACHE_DIR")

    # HTTP API (conveyor api)
    api_rate_limit: str = Field("100/s", validation_alias="CONVEYOR_API_RATE_LIMIT")
    api_key_cache_s: float = Field(5.0, ge=0, le=300, validation_alias="CONVEYOR_API_KEY_CACHE_S")

    # Job store (its URL: CONVEYOR_DATABASE_URL; DATABASE_URL only when told to, below)
    database_url: str | None = Field(None, validation_alias="CONVEYOR_DATABASE_URL")
    job_retention_s: float = Field(7 * 86400.0, gt=0, validation_alias="CONVEYOR_JOB_RETENTION")
    dead_letter_retention_s: float = Field(
        7 * 86400.0, gt=0, validation_alias="CONVEYOR_DEAD_LETTER_RETENTION"
    )
    recorder_batch_size: int = Field(
        500, ge=1, le=10_000, validation_alias="CONVEYOR_RECORDER_BATCH_SIZE"
    )
    recorder_poll_s: float = Field(1.0, gt=0, le=60, validation_alias="CONVEYOR_RECORDER_POLL_S")
    recorder_claim_idle_s: float = Field(
        30.0, gt=0, validation_alias="CONVEYOR_RECORDER_CLAIM_IDLE_S"
    )
    store_busy_timeout_s: float = Field(
        10.0, gt=0, validation_alias="CONVEYOR_STORE_BUSY_TIMEOUT_S"
    )

    # Retries (defaults for job types that set none)
    default_retries: int = Field(3, ge=0, validation_alias="CONVEYOR_DEFAULT_RETRIES")
    default_backoff_s: Annotated[tuple[float, ...], NoDecode] = Field(
        (60.0, 180.0, 540.0), validation_alias="CONVEYOR_DEFAULT_BACKOFF_S"
    )
    backoff_max_s: float = Field(600.0, gt=0, validation_alias="CONVEYOR_BACKOFF_MAX_S")
    backoff_jitter: float = Field(0.1, ge=0, lt=1, validation_alias="CONVEYOR_BACKOFF_JITTER")

    # Dead-letter alerts (conveyor.services.alerts)
    alert_webhook_url: str | None = Field(None, validation_alias="CONVEYOR_ALERT_WEBHOOK_URL")
    alert_queues: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias="CONVEYOR_ALERT_QUEUES"
    )
    alert_retries: int = Field(8, ge=0, le=50, validation_alias="CONVEYOR_ALERT_RETRIES")
    alert_timeout_s: float = Field(10.0, gt=0, le=300, validation_alias="CONVEYOR_ALERT_TIMEOUT_S")

    # Events and live state
    events_maxlen: int = Field(1_000_000, ge=1000, validation_alias="CONVEYOR_EVENTS_MAXLEN")
    delayed_poll_s: float = Field(0.5, gt=0, le=60, validation_alias="CONVEYOR_DELAYED_POLL_S")
    heartbeat_s: float = Field(5.0, gt=0, le=300, validation_alias="CONVEYOR_HEARTBEAT_S")
    cancel_grace_s: float = Field(10.0, ge=0, le=3600, validation_alias="CONVEYOR_CANCEL_GRACE_S")
    max_redeliveries: int = Field(5, ge=0, validation_alias="CONVEYOR_MAX_REDELIVERIES")
    gpu_wait_s: float = Field(900.0, gt=0, validation_alias="CONVEYOR_GPU_WAIT_S")

    # Worker health and the worker manager (conveyor.scaling)
    heartbeat_file: Path | None = Field(None, validation_alias="CONVEYOR_HEARTBEAT_FILE")
    worker_stale_s: float | None = Field(None, gt=0, validation_alias="CONVEYOR_WORKER_STALE_S")
    worker_memory_limit_mb: float | None = Field(
        None, gt=0, validation_alias="CONVEYOR_WORKER_MEMORY_LIMIT_MB"
    )
    autoscale: bool = Field(True, validation_alias="CONVEYOR_AUTOSCALE")
    autoscale_profiles: str = Field("", validation_alias="CONVEYOR_AUTOSCALE_PROFILES")
    autoscale_backend: Literal["local", "kubernetes", "compose"] = Field(
        "local", validation_alias="CONVEYOR_AUTOSCALE_BACKEND"
    )
    autoscale_poll_s: float = Field(
        10.0, gt=0, le=3600, validation_alias="CONVEYOR_AUTOSCALE_POLL_S"
    )
    autoscale_min_workers: int = Field(2, ge=0, validation_alias="CONVEYOR_AUTOSCALE_MIN_WORKERS")
    autoscale_max_workers: int = Field(10, ge=1, validation_alias="CONVEYOR_AUTOSCALE_MAX_WORKERS")
    autoscale_backlog_steps: str = Field(
        "20:3,50:5,101:10", validation_alias="CONVEYOR_AUTOSCALE_BACKLOG_STEPS"
    )
    autoscale_cpu_up_pct: float = Field(
        70.0, gt=0, le=100, validation_alias="CONVEYOR_AUTOSCALE_CPU_UP_PCT"
    )
    autoscale_cpu_down_pct: float = Field(
        30.0, ge=0, le=100, validation_alias="CONVEYOR_AUTOSCALE_CPU_DOWN_PCT"
    )
    autoscale_memory_up_pct: float = Field(
        80.0, gt=0, le=100, validation_alias="CONVEYOR_AUTOSCALE_MEMORY_UP_PCT"
    )
    autoscale_memory_down_pct: float = Field(
        30.0, gt=0, le=100, validation_alias="CONVEYOR_AUTOSCALE_MEMORY_DOWN_PCT"
    )
    autoscale_job_time_up_s: float = Field(
        60.0, gt=0, validation_alias="CONVEYOR_AUTOSCALE_JOB_TIME_UP_S"
    )
    autoscale_job_time_down_s: float = Field(
        20.0, ge=0, validation_alias="CONVEYOR_AUTOSCALE_JOB_TIME_DOWN_S"
    )
    autoscale_up_cooldown_s: float = Field(
        30.0, ge=0, validation_alias="CONVEYOR_AUTOSCALE_UP_COOLDOWN_S"
    )
    autoscale_down_delay_s: float = Field(
        120.0, ge=0, validation_alias="CONVEYOR_AUTOSCALE_DOWN_DELAY_S"
    )
    autoscale_hysteresis: float = Field(
        0.2, ge=0, lt=1, validation_alias="CONVEYOR_AUTOSCALE_HYSTERESIS"
    )
    autoscale_grace_s: float = Field(30.0, ge=0, validation_alias="CONVEYOR_AUTOSCALE_GRACE_S")
    autoscale_metrics_port: int | None = Field(
        None, ge=0, le=65535, validation_alias="CONVEYOR_AUTOSCALE_METRICS_PORT"
    )
    k8s_api_url: str | None = Field(None, validation_alias="CONVEYOR_K8S_API_URL")
    k8s_namespace: str | None = Field(None, validation_alias="CONVEYOR_K8S_NAMESPACE")
    k8s_deployment: str = Field(
        "conveyor-worker-{profile}", validation_alias="CONVEYOR_K8S_DEPLOYMENT"
    )
    k8s_token_file: Path | None = Field(None, validation_alias="CONVEYOR_K8S_TOKEN_FILE")
    k8s_ca_file: Path | None = Field(None, validation_alias="CONVEYOR_K8S_CA_FILE")
    compose_file: Path | None = Field(None, validation_alias="CONVEYOR_COMPOSE_FILE")
    compose_project: str | None = Field(None, validation_alias="CONVEYOR_COMPOSE_PROJECT")
    compose_service: str = Field("worker-{profile}", validation_alias="CONVEYOR_COMPOSE_SERVICE")
    # A job whose type the worker that took it does not declare goes back for one that
    # does, at most this many times (pauses of up to 5 s in between: about an hour).
    unknown_type_max_hops: int = Field(720, ge=0, validation_alias="CONVEYOR_UNKNOWN_TYPE_MAX_HOPS")
    # How long `conveyor submit --wait` and `watch` wait by default (0: no limit).
    wait_timeout_s: float = Field(600.0, ge=0, validation_alias="CONVEYOR_WAIT_TIMEOUT_S")

    # Media pack (conveyor.packs.media, docs/media.md)
    packs: Annotated[tuple[str, ...], NoDecode] = Field(
        ("diag", "upkeep"), validation_alias="CONVEYOR_PACKS"
    )
    media_roots: str = Field("", validation_alias="CONVEYOR_MEDIA_ROOTS")
    media_url_schemes: Annotated[tuple[str, ...], NoDecode] = Field(
        ("https",), validation_alias="CONVEYOR_MEDIA_URL_SCHEMES"
    )
    media_url_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), validation_alias="CONVEYOR_MEDIA_URL_HOSTS"
    )
    media_allow_private_urls: bool = Field(
        False, validation_alias="CONVEYOR_MEDIA_ALLOW_PRIVATE_URLS"
    )
    media_url_max_mb: float = Field(2048.0, gt=0, validation_alias="CONVEYOR_MEDIA_URL_MAX_MB")
    media_gpu: Literal["auto", "off", "force"] = Field(
        "auto", validation_alias="CONVEYOR_MEDIA_GPU"
    )
    ffmpeg_path: Path | None = Field(None, validation_alias="CONVEYOR_FFMPEG")
    ffprobe_path: Path | None = Field(None, validation_alias="CONVEYOR_FFPROBE")
    # Job store sharing a database (conveyor.store.db): DATABASE_URL is often the
    # application's own database, so the store uses it only when told to.
    app_database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    store_use_database_url: bool = Field(False, validation_alias="CONVEYOR_STORE_USE_DATABASE_URL")
    store_table_prefix: str = Field(
        "conveyor_",
        pattern=r"^([a-z][a-z0-9_]{0,30})?$",
        validation_alias="CONVEYOR_STORE_TABLE_PREFIX",
    )
    # ACL users (Redis 6+/Valkey): joined into the broker URL like REDIS_PASSWORD.
    redis_username: str | None = Field(None, validation_alias="REDIS_USERNAME")

    # Stock Celery producers on the same broker (conveyor.compat, docs/celery.md)
    celery_relay: bool = Field(True, validation_alias="CONVEYOR_CELERY_RELAY")

    # Periodic jobs (conveyor beat) and the upkeep pack (conveyor.packs.upkeep)
    beat_interval_s: float = Field(5.0, gt=0, le=300, validation_alias="CONVEYOR_BEAT_INTERVAL_S")
    beat_lock_timeout_s: float = Field(30.0, gt=0, validation_alias="CONVEYOR_BEAT_LOCK_TIMEOUT_S")
    cleanup_roots: Annotated[tuple[Path, ...], NoDecode] = Field(
        (), validation_alias="CONVEYOR_CLEANUP_ROOTS"
    )
    stalled_threshold_s: float | None = Field(
        None, gt=0, validation_alias="CONVEYOR_STALLED_THRESHOLD_S"
    )
    stalled_policy: Literal["requeue", "fail", "report"] = Field(
        "requeue", validation_alias="CONVEYOR_STALLED_POLICY"
    )
    resources_history: int = Field(
        120, ge=1, le=10_000, validation_alias="CONVEYOR_RESOURCES_HISTORY"
    )
    secret_key: str | None = Field(
        None, min_length=32, repr=False, validation_alias="CONVEYOR_SECRET_KEY"
    )
    job_token_ttl_s: float = Field(
        600.0, gt=0, le=86400, validation_alias="CONVEYOR_JOB_TOKEN_TTL_S"
    )
    dashboard_session_s: float = Field(
        8 * 3600.0, gt=0, le=30 * 86400, validation_alias="CONVEYOR_DASHBOARD_SESSION_S"
    )
    #: How long a worker, the recorder, the API or the worker manager waits at start for
    #: an unreachable broker (0: fail at once). ``conveyor up`` sets a day.
    broker_wait_s: float = Field(0.0, ge=0, validation_alias="CONVEYOR_BROKER_WAIT_S")

    @field_validator("api_rate_limit")
    @classmethod
    def _rate_limit_format(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("job_retention_s", "dead_letter_retention_s", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip()

    @field_validator(
        "alert_queues",
        "default_backoff_s",
        "packs",
        "media_url_schemes",
        "media_url_hosts",
        "cleanup_roots",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("default_backoff_s")
    @classmethod
    def _backoff_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(v < 0 for v in value):
            raise ValueError("must be a comma-separated list of seconds ≥ 0, e.g. 60,180,540")
        return value

    @model_validator(mode="after")
    def _limits_consistent(self) -> Settings:
        if self.soft_time_limit_s >= self.time_limit_s:
            raise ValueError(
                "CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT "
                f"(got {self.soft_time_limit_s:g} ≥ {self.time_limit_s:g})"
            )
        if self.beat_lock_timeout_s < 2 * self.beat_interval_s:
            raise ValueError(
                "CONVEYOR_BEAT_LOCK_TIMEOUT_S must be at least twice CONVEYOR_BEAT_INTERVAL_S "
                "(the active beat renews its lock once per interval)"
            )
        if self.visibility_timeout_s is not None and self.visibility_timeout_s <= self.time_limit_s:
            raise ValueError(
                "CONVEYOR_VISIBILITY_TIMEOUT_S must be above CELERY_TASK_TIME_LIMIT, or a job "
                "that runs to its hard limit is delivered twice"
            )
        return self

    # ------------------------------------------------------------------ derived

    @property
    def configured_broker_url(self) -> str | None:
        """The broker URL the environment names, or None for the embedded broker."""
        url = self.celery_broker_url or self.redis_url
        if url is None and self.redis_host:
            url = f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"
        if url and url.startswith(("redis://", "rediss://")):
            url = _with_credentials(url, self.redis_username, self.redis_password)
        return url

    @property
    def home_dir(self) -> Path:
        """``CONVEYOR_HOME`` as an absolute path."""
        return self.home.expanduser().resolve()

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read the environment; any invalid value raises :class:`ConfigurationError`.

        The message names the environment variable and says what is allowed.
        """
        unknown = sorted(
            name
            for name in os.environ
            if name.startswith("CONVEYOR_")
            and name not in _KNOWN_ENV
            and not _PROFILE_ENV.match(name)
        )
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s): {', '.join(unknown)}; known CONVEYOR_ settings: "
                + ", ".join(sorted(n for n in _KNOWN_ENV if n.startswith("CONVEYOR_")))
            )
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None
        except SettingsError as exc:
            raise ConfigurationError(f"invalid configuration: {exc}") from None


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with REDIS_USERNAME / REDIS_PASSWORD filled in where it names none."""
    parts = urlsplit(url)
    user = parts.username or username or ""
    secret = parts.password if parts.password is not None else password
    if not user and not secret:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = quote(unquote(user), safe="")
    if secret:
        userinfo += ":" + quote(unquote(secret) if parts.password else secret, safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias or field)


_KNOWN_ENV = {env_name(name) for name in Settings.model_fields}
#: Profile-scoped worker settings (``CONVEYOR_PROFILE_GENERATION_CONCURRENCY``), read by
#: :mod:`conveyor.worker.sizing`.
_PROFILE_ENV = re.compile(r"^CONVEYOR_PROFILE_[A-Z0-9_]+_CONCURRENCY$")


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else ""
        if name in Settings.model_fields:
            name = env_name(name)
        given = error.get("input")
        shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{name}: {message}{shown}" if name else f"{message}")
    return "invalid configuration: " + "; ".join(problems)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number of seconds (``3600``) or a count and unit (``12h``, ``7d``).

    Units: ``s``, ``m``, ``h``, ``d``, ``w``. Raises ``ValueError`` for anything else.
    """
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError("expected seconds or a duration such as 90s, 30m, 12h, 7d") from None
    return seconds


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: str) -> tuple[int, float] | None:
    """``"100/s"`` → (100, 1.0): requests per window in seconds; ``"0"`` or ``"off"`` → None."""
    text = value.strip().lower()
    if text in ("0", "off", "none", ""):
        return None
    count, sep, unit = text.partition("/")
    if not sep or not count.isdigit() or int(count) < 1 or unit not in _RATE_UNITS:
        raise ValueError("must be N/s, N/m or N/h (N ≥ 1), or off")
    return int(count), _RATE_UNITS[unit]
