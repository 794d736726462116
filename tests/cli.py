"""``conveyor ARGS`` run in the test's own process, as the ``conveyor`` script runs it.

A fresh interpreter per command costs seconds (imports) on a loaded machine; this
runs the same command tree with the same error handling as
:func:`conveyor.cli.main.main` (a :class:`ConveyorError` printed as ``error: ...``
on stderr, with its exit code), and returns what ``subprocess.run`` would. The
tests that are about the process itself (the entry point, exiting fast when the
broker is down, the working directory) still start one.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from subprocess import CompletedProcess

from typer.testing import CliRunner

from conveyor.cli.main import _register, cli, exit_code_for, stderr
from conveyor.errors import ConveyorError


def _registered() -> None:
    """The command groups, added once (``main`` adds them at each start of the script)."""
    if not any(command.name == "status" for command in cli.registered_commands):
        _register()


def run_conveyor(*args: str, env: Mapping[str, str] | None = None) -> CompletedProcess[str]:
    """``conveyor ARGS`` with ``env`` added to the environment; stdout and stderr apart."""
    _registered()
    argv = ["conveyor", *args]
    code: int = 0
    with CliRunner().isolation(env=dict(env or {})) as (out, err, _):
        saved_argv, sys.argv = sys.argv, argv
        try:
            cli(args=list(args), prog_name="conveyor")
        except ConveyorError as exc:
            stderr.print(f"[bold red]error:[/] {exc}", highlight=False)
            code = exit_code_for(exc)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved_argv
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, errors = out.getvalue(), (err.getvalue() if err is not None else b"")
    return CompletedProcess(argv, code, stdout.decode(errors="replace"), errors.decode())
