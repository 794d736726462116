"""CLI start-up: how long `conveyor --help` and `conveyor status ID` take, end to end.

.venv/bin/python bench/cli_startup.py [--runs 7]

Each command runs as a fresh process (what a user at a terminal waits for), with
`status` against an embedded Valkey holding one submitted job. Reported: median
and best wall time and median CPU time (user + system) of ``--runs`` runs after one
warm-up (which fills the OS file cache), plus ``import conveyor.cli.main`` alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conveyor import Conveyor, Settings
from conveyor.testing import embedded_broker


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU) seconds of ``runs`` runs of ``argv``.

    CPU time (user + system) is the figure to compare on a busy machine: wall time
    there also counts the time spent waiting for a core.
    """
    walls, cpus = [], []
    for index in range(runs + 1):
        cpu_before = _cpu_children()
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{argv} exited {done.returncode}: {done.stderr.decode()}")
        if index:
            walls.append(elapsed)
            cpus.append(_cpu_children() - cpu_before)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def main() -> None:
    """Run the measurements and print one line per command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp) / "broker") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "REDIS_"))}
        env.update(REDIS_URL=url, CONVEYOR_HOME=str(Path(tmp) / "home"))
        job = Conveyor(Settings(redis_url=url, home=Path(tmp) / "home")).submit("diag.noop", {})
        commands = {
            "import conveyor.cli.main": [python, "-c", "import conveyor.cli.main"],
            "conveyor --help": [python, "-m", "conveyor", "--help"],
            "conveyor status ID": [python, "-m", "conveyor", "status", job.id],
        }
        print(f"CLI start-up, {args.runs} runs each: wall median / best, CPU median")
        for name, argv in commands.items():
            median, best, cpu = timed(argv, env, args.runs)
            print(
                f"  {name:<26} {median * 1000:6.0f} / {best * 1000:5.0f} ms wall, "
                f"{cpu * 1000:5.0f} ms CPU"
            )


if __name__ == "__main__":
    main()
