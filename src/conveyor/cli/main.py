"""The ``conveyor`` command: command groups and one place that turns errors into exit codes.

Exit codes: 0 success; 1 a job failed or a runtime error (broker down…);
2 bad input (unknown job type, invalid payload, bad flag); 3 a job was
cancelled; 4 a wait timed out.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from conveyor.errors import (
    ConfigurationError,
    ConveyorError,
    InvalidSubmission,
    JobTimeoutError,
    NotFound,
)

cli = typer.Typer(
    name="conveyor",
    help="Conveyor: reliable, observable background jobs on Celery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True)


def _register() -> None:
    from conveyor.cli import bench, info, jobs, stack

    stack.register(cli)
    jobs.register(cli)
    info.register(cli)
    bench.register(cli)
    __import__("conveyor.cli.workers", fromlist=["register"]).register(cli)
    __import__("conveyor.cli.store", fromlist=["register"]).register(cli)
    __import__("conveyor.cli.api", fromlist=["register"]).register(cli)
    __import__("conveyor.cli.dlq", fromlist=["register"]).register(cli)
    __import__("conveyor.cli.periodic", fromlist=["register"]).register(cli)
    __import__("conveyor.cli.deploy", fromlist=["register"]).register(cli)


def exit_code_for(exc: ConveyorError) -> int:
    """The exit code an error maps to."""
    if isinstance(exc, InvalidSubmission | ConfigurationError | NotFound):
        return 2
    if isinstance(exc, JobTimeoutError):
        return 4
    return 1


def main() -> None:
    """Entry point of the ``conveyor`` script."""
    # Let `CONVEYOR_APP=myproject.jobs:app` import from the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    _register()
    try:
        cli()
    except ConveyorError as exc:
        stderr.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        sys.exit(130)
