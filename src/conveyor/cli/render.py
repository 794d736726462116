"""How jobs look in a terminal: a live progress bar and a state panel."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from conveyor.cli.common import console, stderr_console
from conveyor.errors import JobTimeoutError

if TYPE_CHECKING:
    from conveyor.client.job import Job
    from conveyor.state import JobState

EXIT_FOR_STATUS = {"succeeded": 0, "failed": 1, "cancelled": 3}


def progress_columns() -> tuple[ProgressColumn, ...]:
    """The progress bar's columns: status, bar, percent, stage, message, elapsed."""
    return (
        TextColumn("[bold]{task.fields[status]:<9}"),
        BarColumn(),
        TaskProgressColumn(),
        # Stage and message are the job's words, not console markup.
        TextColumn("{task.fields[stage]}", markup=False),
        TextColumn("{task.fields[message]}", markup=False, style="dim"),
        TimeElapsedColumn(),
    )


def follow(
    job: Job, timeout: float | None = None, why: Callable[[], str | None] | None = None
) -> JobState:
    """Show a live progress bar (stage and message) until the job ends; return its state.

    ``why`` says why a queued job waits (no worker serves its type…): printed
    before the bar, and in the :class:`JobTimeoutError` when the wait times out.
    """
    reason = why() if why is not None else None
    if reason is not None:
        stderr_console.print(f"[yellow]waiting:[/] {escape(reason)}")
    try:
        _follow(job, timeout)
    except JobTimeoutError as exc:
        state = job.state()
        reason = why() if why is not None and state.status == "queued" else None
        because = f" ({reason})" if reason else ""
        raise JobTimeoutError(
            f"{exc}; it is {state.status}{because}. It goes on: "
            f"`conveyor watch {job.id}` follows it, --timeout N waits longer (0: no limit)"
        ) from None
    return job.state()


def _follow(job: Job, timeout: float | None) -> None:
    columns = progress_columns()
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(job.id, total=100, status="queued", stage="", message="")
        for event in job.events(timeout=timeout):
            kind = str(event.get("type"))
            if kind == "state":
                state = event["state"]
                bar.update(
                    task,
                    completed=state.get("progress") or 0,
                    status=state.get("status", ""),
                    stage=state.get("stage") or "",
                    message=state.get("message") or "",
                )
            elif kind == "progress":
                bar.update(
                    task,
                    completed=event.get("progress") or 0,
                    status="started",
                    stage=event.get("stage") or "",
                    message=event.get("message") or "",
                )
            else:
                bar.update(task, status=kind)
                if kind == "succeeded":
                    bar.update(task, completed=100)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def state_table(state: JobState) -> Table:
    """Every field of a job, one row each."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("id", state.id),
        ("type", state.type),
        ("status", state.status),
        ("queue", state.queue),
        ("priority", str(state.priority)),
        ("progress", f"{state.progress:.0f}%"),
        ("stage", state.stage or "-"),
        ("message", state.message or "-"),
        ("attempt", str(state.attempt)),
        ("deliveries", str(state.deliveries)),
        ("worker", state.worker or "-"),
        ("payload", as_json(state.payload)),
        ("result", as_json(state.result)),
        ("created", _when(state.created_at)),
        ("due", _when(state.due_at)),
        ("started", _when(state.started_at)),
        ("finished", _when(state.finished_at)),
        ("wait time", _secs(state.wait_s)),
        ("run time", _secs(state.run_s)),
    ]
    if state.error is not None:
        rows.append(("error", f"{state.error.type}: {state.error.message}"))
        if state.error.traceback:
            rows.append(("traceback", state.error.traceback.rstrip()))
    for name, value in rows:
        table.add_row(name, Text(value))  # job data is not console markup
    return table


def as_json(value: Any) -> str:
    """A payload or result as the JSON it was submitted or returned as."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def outcome_line(state: JobState) -> str:
    """One line saying how the job ended."""
    if state.status == "succeeded":
        result = escape(as_json(state.result))
        return f"[green]succeeded[/] in {_secs(state.run_s)}; result: {result}"
    if state.status == "failed" and state.error is not None:
        error = escape(f"{state.error.type}: {state.error.message}")
        return f"[red]failed[/] after {state.attempt + 1} attempt(s): {error}"
    return f"[yellow]{state.status}[/]"
