"""``conveyor jobs``, ``conveyor recorder`` and ``conveyor db upgrade``: the job store."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from conveyor.cli.common import JSON_OPTION, SHORT, console, get_app, print_json, utc_time
from conveyor.cli.tables import Col, fitted

if TYPE_CHECKING:
    from conveyor.store import JobRecord

# Settings and the store load inside the commands: `conveyor --help` never needs them.

db = typer.Typer(help="The job store's database: schema migrations.", no_args_is_help=True)


def _record_json(record: JobRecord) -> dict[str, object]:
    state = record.to_state()
    return record.model_dump(mode="json") | {"wait_s": state.wait_s, "run_s": state.run_s}


def jobs(
    status: str | None = typer.Option(None, "--status", help="e.g. failed, succeeded, started."),
    job_type: str | None = typer.Option(None, "--type", help="Only this job type."),
    queue: str | None = typer.Option(None, "--queue", help="Only this queue."),
    since: str | None = typer.Option(None, "--since", help="Created within, e.g. 30m, 1h, 7d."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="At most this many."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List jobs from the job store, newest first."""
    from conveyor.state import STATUSES

    if status is not None and status not in STATUSES:
        # The same values as the API's `status` filter (a 422 there).
        raise typer.BadParameter(
            f"unknown status {status!r}; one of: {', '.join(STATUSES)}", param_hint="'--status'"
        )
    cutoff = None
    if since is not None:
        try:
            from conveyor.settings import parse_duration

            cutoff = time.time() - parse_duration(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--since'") from None
    from conveyor.settings import Settings
    from conveyor.store import open_store

    store = open_store(Settings.load())
    try:
        store.check()
        records, _ = store.list_jobs(
            status=status, type=job_type, queue=queue, since=cutoff, limit=limit
        )
    finally:
        store.close()
    if as_json:
        print_json([_record_json(r) for r in records])
        return
    table = jobs_table(records, console.width)
    console.print(table)
    if not records:
        console.print("no jobs match")


def jobs_table(records: list[JobRecord], width: int) -> Table:
    """``conveyor jobs`` as a table that fits ``width`` (ids whole, see :mod:`.tables`)."""
    columns = [
        Col("id"),
        Col("type"),
        Col("status"),
        Col("created (UTC)", drop=1),
        Col("error", drop=2, fold=True),
        Col("run time", drop=3, justify="right"),
        Col("queue", drop=4),
        Col("attempt", drop=5, justify="right"),
    ]
    rows = []
    for record in records:
        state = record.to_state()
        error = f"{record.error_type}: {record.error_message}" if record.error_type else ""
        run = "-" if state.run_s is None else f"{state.run_s:.3f}s"
        created = utc_time(record.created_at, SHORT)
        status = record.status
        attempt = str(record.attempt)
        rows.append(
            [record.id, record.type, status, created, error[:200], run, record.queue, attempt]
        )
    return fitted(columns, rows, width)


def recorder(
    consumer: str | None = typer.Option(
        None, "--consumer", help="Consumer name in the group (default: host-pid)."
    ),
) -> None:
    """Record every event of the stream in the job store (migrates the schema first)."""
    from conveyor.store import open_store
    from conveyor.store.recorder import Recorder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app = get_app()
    from conveyor.broker.outage import wait_until_reachable

    wait_until_reachable(
        app.broker_url,
        timeout_s=app.settings.broker_connect_timeout_s,
        wait_s=app.settings.broker_wait_s,
    )
    store = open_store(app.settings)
    before, after = store.upgrade()
    if before != after:
        logging.getLogger("conveyor.recorder").info(
            "job store schema upgraded %s -> %s", before or "(empty)", after
        )
    worker = Recorder(store, app.redis, consumer=consumer)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stats = worker.run()
    finally:
        store.close()
    logging.getLogger("conveyor.recorder").info(
        "recorder stopped: %d events recorded, %d malformed", stats.recorded, stats.malformed
    )


@db.command("upgrade")
def upgrade() -> None:
    """Apply the job store's schema migrations (the recorder also does this on start)."""
    from conveyor.settings import Settings
    from conveyor.store import open_store

    store = open_store(Settings.load())
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before == after:
        console.print(f"job store at {store.url}: schema {after}, up to date")
    else:
        console.print(f"job store at {store.url}: schema {before or '(empty)'} -> {after}")


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(jobs)
    cli.command()(recorder)
    cli.add_typer(db, name="db")
