"""Run the Conveyor-vs-plain-Celery benchmark and print the table (same as `conveyor bench`).

.venv/bin/python bench/run.py --jobs 10000 --reps 3
"""

from __future__ import annotations

import argparse

from rich.console import Console

from conveyor.benchmarks import render_table, run_bench


def main() -> None:
    """Parse the arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency-jobs", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pools", default="prefork,procs", help="Conveyor's pools to measure.")
    args = parser.parse_args()
    console = Console(width=200)
    pools = tuple(p for p in args.pools.split(",") if p)
    results = run_bench(args.jobs, args.latency_jobs, args.reps, log=console.print, pools=pools)
    console.print(render_table(results))


if __name__ == "__main__":
    main()
