"""``conveyor bench``: Conveyor next to plain Celery on one broker, in one run."""

from __future__ import annotations

import typer

from conveyor.cli.common import JSON_OPTION, console, print_json


def bench(
    jobs: int = typer.Option(10_000, "--jobs", "-n", min=100, help="No-op jobs per system."),
    latency_jobs: int = typer.Option(500, "--latency-jobs", min=10),
    reps: int = typer.Option(1, "--reps", min=1, help="Repetitions; figures are medians."),
    pools: str = typer.Option(
        "prefork,procs", "--pools", help="Conveyor's worker pools to measure, comma-separated."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Throughput and latency of Conveyor and plain Celery (2 worker processes each)."""
    from conveyor.benchmarks import render_table, run_bench

    chosen = tuple(p.strip() for p in pools.split(",") if p.strip())
    results = run_bench(
        jobs=jobs, latency_jobs=latency_jobs, reps=reps, log=console.print, pools=chosen
    )
    if as_json:
        print_json([r.__dict__ for r in results])
    else:
        console.print(render_table(results))


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(bench)
