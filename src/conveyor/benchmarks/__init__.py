"""Benchmarks: Conveyor next to plain Celery on one broker, in one run (``conveyor bench``)."""

from conveyor.benchmarks.runner import BenchResult, render_table, run_bench

__all__ = ["BenchResult", "render_table", "run_bench"]
