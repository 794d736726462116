"""``conveyor bench``: Conveyor next to plain Celery on one broker, in one run.

``conveyor bench --peers`` puts Conveyor beside every other Python queue that is
installed (Celery, Huey, Dramatiq, RQ, taskiq, arq), in one run on one broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from conveyor.cli.common import JSON_OPTION, console, print_json, stderr_console

if TYPE_CHECKING:
    from conveyor.benchmarks.peers import PeersRun


def bench(
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-n",
        min=100,
        help="No-op jobs per system (default 10,000; with --peers 3,000 bulk-enqueued).",
    ),
    latency_jobs: int | None = typer.Option(
        None, "--latency-jobs", min=10, help="Jobs submitted one at a time (500; --peers 200)."
    ),
    reps: int = typer.Option(1, "--reps", min=1, help="Repetitions; figures are medians."),
    peers: bool = typer.Option(
        False, "--peers", help="Also Huey, Dramatiq, RQ, taskiq and arq, where installed."
    ),
    peer_python: Path | None = typer.Option(
        None,
        "--peer-python",
        exists=True,
        dir_okay=False,
        help="--peers: the Python that has the other queues installed (default: this one).",
    ),
    io_jobs: int = typer.Option(
        1000, "--io-jobs", min=0, help="--peers: 10 ms jobs per queue (0: skip that phase)."
    ),
    only: str | None = typer.Option(
        None, "--only", help="--peers: these queues only, comma-separated (conveyor,huey,…)."
    ),
    pools: str = typer.Option(
        "prefork,procs", "--pools", help="Conveyor's worker pools to measure, comma-separated."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Throughput and latency of Conveyor and plain Celery (2 worker processes each).

    With --peers: beside Huey, Dramatiq, RQ, taskiq and arq too, where installed.
    """
    if peers:
        chosen = [name.strip() for name in only.split(",") if name.strip()] if only else None
        run = _run_peers(jobs or 3000, latency_jobs or 200, io_jobs, reps, peer_python, chosen)
        _print_peers(run, as_json)
        return
    from conveyor.benchmarks import render_table, run_bench

    pool_names = tuple(p.strip() for p in pools.split(",") if p.strip())
    results = run_bench(
        jobs=jobs or 10_000,
        latency_jobs=latency_jobs or 500,
        reps=reps,
        log=console.print,
        pools=pool_names,
    )
    if as_json:
        print_json([r.__dict__ for r in results])
    else:
        console.print(render_table(results))


def _run_peers(
    jobs: int,
    latency_jobs: int,
    io_jobs: int,
    reps: int,
    python: Path | None,
    only: list[str] | None,
) -> PeersRun:
    from conveyor.benchmarks.peers import PEERS, run_peers

    unknown = sorted(set(only or ()) - {peer.name for peer in PEERS})
    if unknown:
        raise typer.BadParameter(
            f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(p.name for p in PEERS)}",
            param_hint="--only",
        )
    return run_peers(
        jobs=jobs,
        latency_jobs=latency_jobs,
        io_jobs=io_jobs,
        reps=reps,
        peer_python=str(python) if python else None,
        only=only,
        log=_say,
    )


def _print_peers(run: PeersRun, as_json: bool) -> None:
    from conveyor.benchmarks.peers import as_dict, render_peers, summary_lines

    if as_json:
        print_json(as_dict(run))
        return
    console.print(render_peers(run))
    for line in summary_lines(run):
        console.print(line, markup=False)


def _say(line: str) -> None:
    # Progress on stderr keeps --json's stdout parseable; no markup: "pip install 'x[redis]'".
    stderr_console.print(line, markup=False)


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(bench)
