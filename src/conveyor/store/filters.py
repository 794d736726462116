"""The filters the job store's job listings take, defined once.

:meth:`JobStore.list_jobs <conveyor.store.repository.JobStore.list_jobs>` and
:meth:`~conveyor.store.repository.JobStore.iter_jobs` both take them as keyword
arguments; a new filter is a key of :class:`JobFilters` and a clause in
:func:`where_jobs`, and both methods have it.
"""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import Select, String, cast

from conveyor.store.models import JobRow


class JobFilters(TypedDict, total=False):
    """Which jobs a listing keeps; a filter left out (or None) keeps every job."""

    status: str | None
    type: str | None
    queue: str | None
    tenant: str | None
    #: Unix time: ``created_at`` at or after it.
    since: float | None
    #: Unix time: ``created_at`` before it.
    until: float | None
    #: (field, value): the payload's top-level ``field`` equals ``value`` as text.
    payload_match: tuple[str, str] | None


def where_jobs(query: Select[Any], filters: JobFilters) -> Select[Any]:
    """``query`` (over the jobs table) narrowed to the jobs ``filters`` keep."""
    for column, name in (
        (JobRow.status, "status"),
        (JobRow.type, "type"),
        (JobRow.queue, "queue"),
        (JobRow.tenant, "tenant"),
    ):
        value = filters.get(name)
        if value is not None:
            query = query.where(column == value)
    since = filters.get("since")
    if since is not None:
        query = query.where(JobRow.created_at >= since)
    until = filters.get("until")
    if until is not None:
        query = query.where(JobRow.created_at < until)
    payload_match = filters.get("payload_match")
    if payload_match is not None:
        field, value = payload_match
        # As text on both back ends: SQLite's json_extract keeps a number a number.
        query = query.where(cast(JobRow.payload[field].as_string(), String) == value)
    return query
