"""Conveyor beside the other Python queues, one run, one broker (as `conveyor bench --peers`).

.venv/bin/python bench/peers.py --peer-python /tmp/peers-venv/bin/python --jobs 3000 --reps 3

The other queues (Huey, Dramatiq, RQ, taskiq, arq) need not be in Conveyor's
environment: give an interpreter that has them (`pip install 'conveyor[bench-peers]'`
or a venv of their own); those missing are named with the command that installs them.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from conveyor.benchmarks.peers import render_peers, run_peers, summary_lines


def main() -> None:
    """Parse the arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--io-jobs", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--only", default=None, help="comma-separated queue names")
    args = parser.parse_args()
    console = Console(width=160)
    run = run_peers(
        jobs=args.jobs,
        latency_jobs=args.latency_jobs,
        io_jobs=args.io_jobs,
        reps=args.reps,
        peer_python=args.peer_python,
        only=args.only.split(",") if args.only else None,
        log=lambda line: console.print(line, markup=False),
    )
    console.print(render_peers(run))
    for line in summary_lines(run):
        console.print(line, markup=False)


if __name__ == "__main__":
    main()
