"""``conveyor beat``, ``conveyor schedules …``, ``conveyor purge QUEUE`` and ``conveyor flower``."""

from __future__ import annotations

import logging
from typing import Any

import typer

from conveyor.cli.common import JSON_OPTION, console, get_app, print_json, utc_time
from conveyor.cli.tables import Col, fitted

schedules = typer.Typer(
    help="Periodic jobs: list them (next and last run), pause, resume or run one now.",
    invoke_without_command=True,
)

NAME = typer.Argument(..., help="The schedule's name (see `conveyor schedules`).")


def _core() -> Any:
    # Loaded on use: it imports Celery, which `conveyor --help` should not pay for.
    from conveyor import schedules

    return schedules


def beat(loglevel: str = typer.Option("INFO", "--loglevel", "-l")) -> None:
    """Run the scheduler: submit each schedule's job when due (one beat fires at a time)."""
    from conveyor.services.beat import run_beat

    logging.basicConfig(
        level=loglevel.upper(), format="[%(asctime)s: %(levelname)s/beat] %(message)s"
    )
    app = get_app()
    app.check_broker()
    run_beat(app, loglevel.upper())


@schedules.callback()
def list_schedules(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List every schedule with its next run, last run and the last run's job id."""
    if ctx.invoked_subcommand is not None:
        return
    views = _core().views(get_app())
    if as_json:
        print_json([v.as_dict() for v in views])
        return
    if not views:
        console.print("No schedules (declare them with @app.periodic or [schedules.NAME]).")
        return
    columns = [
        Col("schedule"),
        Col("next run (UTC)", drop=1),
        Col("state", drop=2, fold=True),
        Col("last job", drop=3),
        Col("last run (UTC)", drop=4),
        Col("when", drop=5),
        Col("job", drop=6),
    ]
    rows = []
    for v in views:
        state = "disabled" if not v.enabled else "paused" if v.paused else "active"
        if v.last_error:
            state += f" (last: {v.last_error})"
        rows.append(
            [
                v.name,
                utc_time(v.next_run_at),
                state,
                v.last_job_id or "-",
                utc_time(v.last_run_at),
                v.when,
                v.job,
            ]
        )
    table = fitted(columns, rows, console.width)
    console.print(table)


@schedules.command()
def pause(name: str = NAME) -> None:
    """Pause a schedule: its runs are skipped until it is resumed."""
    _core().set_paused(get_app(), name, True)
    console.print(f"Schedule {name} paused.")


@schedules.command()
def resume(name: str = NAME) -> None:
    """Resume a paused schedule (from its next due time)."""
    _core().set_paused(get_app(), name, False)
    console.print(f"Schedule {name} resumed.")


@schedules.command("run-now")
def run_now(name: str = NAME) -> None:
    """Submit a schedule's job now (its timing is unchanged)."""
    job_id = _core().run_now(get_app(), name)
    if job_id is None:
        view = next(v for v in _core().views(get_app()) if v.name == name)
        console.print(f"[red]Schedule {name} could not submit its job:[/] {view.last_error}")
        raise typer.Exit(1)
    console.print(f"Schedule {name}: job {job_id} submitted.")


def purge(
    queue: str = typer.Argument(..., help="The queue to empty."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove a queue's waiting jobs; each becomes `cancelled` (live state and job store)."""
    from conveyor.client.purge import purge_queue

    if not yes and not typer.confirm(f"Cancel every job waiting in {queue}?"):
        raise typer.Exit(1)
    report = purge_queue(get_app(), queue)
    if as_json:
        print_json(report.as_dict())
        return
    console.print(
        f"Purged {queue}: {len(report.cancelled)} jobs cancelled"
        + (f", {len(report.already_done)} already finished" if report.already_done else "")
        + (f", {report.foreign} non-Conveyor messages dropped" if report.foreign else "")
        + "."
    )


def flower(
    port: int = typer.Option(5555, "--port", min=1, max=65535),
    address: str = typer.Option("127.0.0.1", "--address", help="Address Flower binds."),
    extra: list[str] = typer.Argument(None, help="More Flower options, after --."),
) -> None:
    """Start Flower against the configured broker, with this application's tasks loaded."""
    try:
        import flower as _flower  # noqa: F401
    except ImportError:
        console.print(
            "[red]Flower is not installed.[/] Install it with: pip install 'conveyor[flower]'"
        )
        raise typer.Exit(2) from None
    app = get_app()
    app.check_broker()
    from conveyor.settings import mask_url

    console.print(f"Flower on http://{address}:{port} (broker {mask_url(app.broker_url)})")
    from conveyor.monitor.flower import run_flower

    run_flower(app, [f"--port={port}", f"--address={address}", *(extra or [])])


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(beat)
    cli.add_typer(schedules, name="schedules")
    cli.command()(purge)
    cli.command()(flower)
