"""``conveyor queues`` and ``conveyor doctor``."""

from __future__ import annotations

import typer
from rich.table import Table

from conveyor.cli.common import JSON_OPTION, console, get_app, print_json


def queues(as_json: bool = JSON_OPTION) -> None:
    """Waiting jobs per queue and priority level, plus delayed and reserved ones."""
    from conveyor.broker.inspect import delayed_count, queue_depths, reserved_count
    from conveyor.engine.transport import LEVELS_URGENT_FIRST
    from conveyor.worker.gpu import waiting_for_gpu

    app = get_app()
    app.check_broker()
    depths = queue_depths(app.redis, app.topology)
    scheduled = delayed_count(app.redis)
    reserved = reserved_count(app.redis)
    gpu_wait = waiting_for_gpu(app)
    if as_json:
        print_json(
            {
                "queues": [
                    {
                        "name": d.name,
                        "priority": d.priority,
                        "waiting": d.total,
                        "by_priority": {str(k): v for k, v in d.levels.items() if v},
                    }
                    for d in depths
                ],
                "scheduled": scheduled,
                "reserved": reserved,
                "waiting_for_gpu": gpu_wait,
            }
        )
        return
    table = Table("queue", "priority", "waiting", "by message priority (10 → 0)")
    for depth in depths:
        spread = " ".join(
            f"p{level}:{depth.levels[level]}"
            for level in LEVELS_URGENT_FIRST
            if depth.levels[level]
        )
        rank = str(depth.priority) if depth.priority >= 0 else "-"  # dead-letter: drained last
        table.add_row(depth.name, rank, str(depth.total), spread or "-")
    console.print(table)
    console.print(
        f"scheduled (delayed or waiting to retry): {scheduled}   reserved by workers: {reserved}"
    )
    if gpu_wait:
        waiting = ", ".join(f"{queue} {count}" for queue, count in gpu_wait.items())
        console.print(
            f"waiting for a GPU worker (handed back by CPU-only workers): {waiting}",
            markup=False,
        )


def doctor(as_json: bool = JSON_OPTION) -> None:
    """Check the broker, versions, ffmpeg and GPUs; exit 1 if something required is missing."""
    from conveyor.services.doctor import run_checks

    checks = run_checks(get_app())
    if as_json:
        print_json([c.__dict__ for c in checks])
    else:
        for check in checks:
            mark = (
                "[green]ok[/]  "
                if check.ok
                else ("[red]FAIL[/]" if check.required else "[yellow]warn[/]")
            )
            # One line per check, however long (a terminal may wrap it; Conveyor does not).
            console.print(f"{mark} {check.name:<10} {check.detail}", soft_wrap=True)
    if any(not c.ok and c.required for c in checks):
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(queues)
    cli.command()(doctor)
