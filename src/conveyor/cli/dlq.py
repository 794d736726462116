"""``conveyor dlq list|show|replay|purge``: the dead-letter queue from a terminal."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from conveyor.cli.common import JSON_OPTION, SHORT, console, get_app, print_json, utc_time
from conveyor.cli.render import as_json as json_text
from conveyor.cli.tables import Col, fitted

if TYPE_CHECKING:
    from conveyor.client.deadletters import DeadLetter

dlq = typer.Typer(
    help="Dead letters: failed jobs with their input and error; replay or purge them.",
    no_args_is_help=True,
)

TYPE_OPTION = typer.Option(None, "--type", help="Only this job type.")
QUEUE_OPTION = typer.Option(None, "--queue", help="Only jobs that died on this queue.")
ERROR_OPTION = typer.Option(None, "--error-type", help="Only this error, e.g. TimeoutError.")
SINCE_OPTION = typer.Option(None, "--since", help="Failed within, e.g. 30m, 1h, 7d, or ISO time.")
UNTIL_OPTION = typer.Option(None, "--until", help="Failed before, e.g. 1h (ago) or ISO time.")
TENANT_OPTION = typer.Option(None, "--tenant", help="Only this tenant's jobs.")


def _moment(value: str | None, hint: str) -> float | None:
    """``1h`` (that long ago), unix seconds, or an ISO time (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        from conveyor.settings import parse_duration

        return time.time() - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "expected a duration (30m, 1h, 7d) or an ISO time (2026-11-22T10:00)",
            param_hint=hint,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _require_target(job_id: str | None, every: bool, filters: tuple[str | None, ...]) -> None:
    """Refuse a bulk command given neither an id, a filter, nor ``--all``."""
    if job_id is None and not every and all(f is None for f in filters):
        raise typer.BadParameter(
            "give a dead job's id, a filter (--type, --queue, --error-type, --since…) or --all",
            param_hint="'JOB_ID'",
        )


@dlq.command("list")
def list_(
    job_type: str | None = TYPE_OPTION,
    queue: str | None = QUEUE_OPTION,
    error_type: str | None = ERROR_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    tenant: str | None = TENANT_OPTION,
    include_replayed: bool = typer.Option(
        False, "--include-replayed", help="Also list dead letters already replayed."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List dead letters, most recently failed first."""
    from conveyor.client import deadletters

    letters = deadletters.list_dead_letters(
        get_app(),
        type=job_type,
        queue=queue,
        error_type=error_type,
        since=_moment(since, "'--since'"),
        until=_moment(until, "'--until'"),
        tenant=tenant,
        include_replayed=include_replayed,
        limit=limit,
    )
    if as_json:
        print_json([letter.model_dump(mode="json") for letter in letters])
        return
    table = letters_table(letters, console.width)
    console.print(table)
    if not letters:
        console.print("no dead letters match")


def letters_table(letters: list[DeadLetter], width: int) -> Table:
    """``dlq list`` as a table that fits ``width`` (ids whole, see :mod:`.tables`)."""
    columns = [
        Col("job id"),
        Col("type"),
        Col("error", drop=1, fold=True),
        Col("failed (UTC)", drop=2),
        Col("attempts", drop=3, justify="right"),
        Col("queue", drop=4),
        Col("replayed as", drop=5),
    ]
    rows = [
        [
            letter.job_id,
            letter.type,
            f"{letter.error_type}: {letter.error_message or ''}"[:200],
            utc_time(letter.failed_at, SHORT),
            str(letter.attempt + 1),
            letter.queue,
            letter.replayed_as or "",
        ]
        for letter in letters
    ]
    return fitted(columns, rows, width)


@dlq.command()
def show(job_id: str, as_json: bool = JSON_OPTION) -> None:
    """Show one dead letter: input, error, traceback, attempts, worker."""
    from conveyor.client import deadletters

    letter = deadletters.get_dead_letter(get_app(), job_id)
    if as_json:
        print_json(letter.model_dump(mode="json"))
        return
    console.print(_panel(letter))
    if letter.traceback:
        console.print(letter.traceback.rstrip(), markup=False)


def _panel(letter: DeadLetter) -> Table:
    table = Table(show_header=False, box=None)
    rows = [
        ("job id", letter.job_id),
        ("type", letter.type),
        ("queue", letter.queue),
        ("priority", "-" if letter.priority is None else str(letter.priority)),
        ("payload", json_text(letter.payload)),
        ("error", f"{letter.error_type}: {letter.error_message or ''}"),
        ("attempts", str(letter.attempt + 1)),
        ("deliveries", str(letter.deliveries)),
        ("worker", letter.worker or "-"),
        ("tenant", letter.tenant or "-"),
        ("failed", utc_time(letter.failed_at)),
        ("expires", utc_time(letter.expires_at)),
        ("replayed as", letter.replayed_as or "-"),
    ]
    for name, value in rows:
        table.add_row(f"[bold]{name}", Text(value))
    return table


@dlq.command()
def replay(
    job_id: str | None = typer.Argument(None, help="The dead job's id (or use filters)."),
    job_type: str | None = TYPE_OPTION,
    queue: str | None = QUEUE_OPTION,
    error_type: str | None = ERROR_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    tenant: str | None = TENANT_OPTION,
    every: bool = typer.Option(False, "--all", help="Replay every dead letter (no filter)."),
    to_queue: str | None = typer.Option(None, "--to-queue", help="Send the new job(s) here."),
    priority: int | None = typer.Option(None, "--priority", min=0, max=10),
    time_limit: float | None = typer.Option(
        None, "--time-limit", min=0, help="Hard time limit of the new job(s), seconds."
    ),
    soft_time_limit: float | None = typer.Option(
        None, "--soft-time-limit", min=0, help="Soft time limit of the new job(s), seconds."
    ),
    force: bool = typer.Option(False, "--force", help="Replay even if replayed before."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="At most this many (default: the bulk limit, 10,000)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Replay one dead letter (by id) or all matching the filters, each as a new job."""
    from conveyor.client import deadletters

    app = get_app()
    filters = (job_type, queue, error_type, since, until, tenant)
    if job_id is not None:
        if any(f is not None for f in filters) or every:
            raise typer.BadParameter("give an id or filters, not both", param_hint="'JOB_ID'")
        job = deadletters.replay(
            app,
            job_id,
            queue=to_queue,
            priority=priority,
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            force=force,
        )
        if as_json:
            print_json({"replayed": {job_id: job.id}, "refused": {}})
        else:
            console.print(f"replayed {job_id} as {job.id}")
        return
    _require_target(job_id, every, filters)
    if priority is not None or force:
        raise typer.BadParameter("only with a single id", param_hint="'--priority' / '--force'")
    report = deadletters.replay_matching(
        app,
        type=job_type,
        queue=queue,
        error_type=error_type,
        since=_moment(since, "'--since'"),
        until=_moment(until, "'--until'"),
        tenant=tenant,
        limit=limit or deadletters.BULK_LIMIT,
        to_queue=to_queue,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        everything=every,
    )
    if as_json:
        print_json({"replayed": report.replayed, "refused": report.refused})
    else:
        for dead_id, new_id in report.replayed.items():
            console.print(f"replayed {dead_id} as {new_id}")
        for dead_id, reason in report.refused.items():
            console.print(f"[yellow]not replayed[/] {dead_id}: {reason}")
        console.print(f"{len(report.replayed)} replayed, {len(report.refused)} refused")
    if report.refused:
        raise typer.Exit(1)


@dlq.command()
def purge(
    job_id: str | None = typer.Argument(None, help="The dead job's id (or use filters)."),
    job_type: str | None = TYPE_OPTION,
    queue: str | None = QUEUE_OPTION,
    error_type: str | None = ERROR_OPTION,
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    tenant: str | None = TENANT_OPTION,
    every: bool = typer.Option(False, "--all", help="Purge every dead letter."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete dead letters for good: one by id, or all matching the filters."""
    from conveyor.client import deadletters

    app = get_app()
    filters = (job_type, queue, error_type, since, until, tenant)
    _require_target(job_id, every, filters)
    if job_id is None and not yes and not as_json:
        typer.confirm("Purge every dead letter matching these filters?", abort=True)
    purged = deadletters.purge(
        app,
        job_id,
        type=job_type,
        queue=queue,
        error_type=error_type,
        since=_moment(since, "'--since'"),
        until=_moment(until, "'--until'"),
        tenant=tenant,
        everything=every,
    )
    if as_json:
        print_json({"purged": purged})
    else:
        console.print(f"purged {len(purged)} dead letter(s)")


def register(cli: typer.Typer) -> None:
    """Add ``conveyor dlq`` to ``cli``."""
    cli.add_typer(dlq, name="dlq")
