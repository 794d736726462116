"""Upkeep jobs, scheduled by default: clean-up, retention, dead-letter expiry, resources, stalled.

=====================  ====================================================  =============
job (and schedule)     what it does                                          default
=====================  ====================================================  =============
upkeep.files           removes files under ``CONVEYOR_CLEANUP_ROOTS`` by age  every 1h, on
                       and total size (:mod:`conveyor.monitor.cleanup`)      when roots set
upkeep.retention       job-store retention (:mod:`conveyor.store.retention`)  every 1h
upkeep.dead_letters    deletes expired dead letters (7 days by default)      every 1h
upkeep.resources       publishes this host's CPU, memory, disk and GPU       every 30s
                       (:mod:`conveyor.monitor.publish`)
upkeep.stalled         re-queues or fails stalled jobs                       every 1m
                       (:mod:`conveyor.monitor.stalled`)
=====================  ====================================================  =============

Every schedule can be changed or switched off in ``conveyor.toml``::

    [schedules."upkeep.files"]
    cron = "0 3 * * *"
    payload = { max_age = "3d", max_total_size = "50GB" }

    [schedules."upkeep.resources"]
    enabled = false
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from conveyor.errors import PermanentError
from conveyor.jobs import JobContext
from conveyor.settings import parse_duration

if TYPE_CHECKING:
    from conveyor.app import Conveyor

QUEUE = "monitoring"


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class FilesInput(BaseModel):
    """Which files to remove: older than ``max_age``, then the oldest over ``max_total_size``."""

    roots: list[str] | None = Field(
        None, description="Directories inside CONVEYOR_CLEANUP_ROOTS (default: all of them)."
    )
    max_age: float | None = Field(7 * 86400.0, gt=0, description="Seconds, or 12h, 7d…")
    max_total_size: int | None = Field(None, ge=0, description="Bytes, or 500M, 50GB…")
    dry_run: bool = False

    _age = field_validator("max_age", mode="before")(_seconds)

    @field_validator("max_total_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        from conveyor.monitor.cleanup import parse_size

        return parse_size(value) if isinstance(value, str) else value


class NoInput(BaseModel):
    """Nothing to give."""


class DeadLettersInput(BaseModel):
    """Dead letters past their expiry; with ``max_age``, also those that failed longer ago."""

    max_age: float | None = Field(None, gt=0, description="Seconds, or 12h, 7d…")

    _age = field_validator("max_age", mode="before")(_seconds)


class ResourcesInput(BaseModel):
    """The disk whose usage is reported."""

    disk_path: str = "/"


class StalledInput(BaseModel):
    """Threshold and policy (defaults: CONVEYOR_STALLED_THRESHOLD_S and _POLICY)."""

    threshold_s: float | None = Field(None, gt=0)
    policy: Literal["requeue", "fail", "report"] | None = None


def register(app: Conveyor) -> None:
    """Register the upkeep jobs and their default schedules on ``app``."""

    def store() -> Any:
        from conveyor.store import open_store

        return open_store(app.settings)

    @app.periodic("upkeep.files", every="1h", enabled=bool(app.settings.cleanup_roots))
    @app.job("upkeep.files", queue=QUEUE, retries=0)
    def files(ctx: JobContext, params: FilesInput) -> dict[str, Any]:
        """Remove old files under the configured roots; the figures."""
        from conveyor.monitor.cleanup import check_roots, clean_files

        try:
            roots = check_roots(app.settings.cleanup_roots, params.roots)
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        report = clean_files(
            roots,
            max_age_s=params.max_age,
            max_total_bytes=params.max_total_size,
            dry_run=params.dry_run,
        )
        return report.as_dict()

    @app.periodic("upkeep.retention", every="1h")
    @app.job("upkeep.retention", queue=QUEUE, retries=0)
    def retention(ctx: JobContext, params: NoInput) -> dict[str, int]:
        """Delete finished jobs, dead letters and batches past their retention."""
        opened = store()
        try:
            return opened.apply_retention().model_dump()  # type: ignore[no-any-return]
        finally:
            opened.close()

    @app.periodic("upkeep.dead_letters", every="1h")
    @app.job("upkeep.dead_letters", queue=QUEUE, retries=0)
    def dead_letters(ctx: JobContext, params: DeadLettersInput) -> dict[str, int]:
        """Delete expired dead letters (CONVEYOR_DEAD_LETTER_RETENTION, 7 days by default)."""
        from conveyor.store.retention import expire_dead_letters

        opened = store()
        try:
            return {"expired": expire_dead_letters(opened, time.time(), params.max_age)}
        finally:
            opened.close()

    @app.periodic("upkeep.resources", every="30s")
    @app.job("upkeep.resources", queue=QUEUE, retries=0)
    def resources(ctx: JobContext, params: ResourcesInput) -> dict[str, Any]:
        """Publish this host's resources (latest, history, pub/sub); the sample."""
        from conveyor.monitor.publish import publish, sample

        data = sample(params.disk_path)
        publish(app.redis, data, app.settings.resources_history)
        return data

    @app.periodic("upkeep.stalled", every="1m")
    @app.job("upkeep.stalled", queue=QUEUE, retries=0)
    def stalled(ctx: JobContext, params: StalledInput) -> dict[str, Any]:
        """Find stalled jobs and re-queue or fail them by policy; the report."""
        from conveyor.monitor.stalled import handle_stalled

        opened = store()
        try:
            report = handle_stalled(
                app, opened, threshold_s=params.threshold_s, policy=params.policy
            )
        finally:
            opened.close()
        return report.as_dict()
