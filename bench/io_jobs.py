"""10 ms I/O-bound jobs/s on the io profile (threads pool), sync and async jobs.

.venv/bin/python bench/io_jobs.py --jobs 2000 --threads 64 --reps 3

See :mod:`conveyor.benchmarks.io` for what is measured; ``run_io_bench`` is the
function to call from other harnesses.
"""

from __future__ import annotations

import argparse
import statistics

from conveyor.benchmarks.io import ASYNC, SYNC, run_io_bench


def main() -> None:
    """Parse the arguments, run, print each run and the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--no-recorder", action="store_true")
    parser.add_argument("--only", choices=["sync", "async"])
    parser.add_argument(
        "--live", action="store_true", help="submit while the workers run (default: before)"
    )
    args = parser.parse_args()
    types = {"sync": (SYNC,), "async": (ASYNC,)}.get(args.only or "", (SYNC, ASYNC))
    results = run_io_bench(
        types,
        jobs=args.jobs,
        threads=args.threads,
        reps=args.reps,
        recorder=not args.no_recorder,
        preload=not args.live,
    )
    baseline = [r.steady_per_s for r in results if r.job_type == "plain celery threads"]
    for job_type in (*types, "plain celery threads"):
        mine = [r for r in results if r.job_type == job_type]
        steady = statistics.median(r.steady_per_s for r in mine)
        e2e = statistics.median(r.e2e_per_s for r in mine)
        print(
            f"{job_type}: {steady:,.0f} jobs/s steady, {e2e:,.0f} end to end "
            f"(median of {len(mine)}; {steady / statistics.median(baseline):.2f}× plain Celery "
            "threads in the same run)"
        )


if __name__ == "__main__":
    main()
