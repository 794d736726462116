"""Helpers shared by the command modules: loading the app, printing JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.settings import Settings

console = Console(highlight=False)
#: Warnings and notes that must not mix with the output a script reads.
stderr_console = Console(stderr=True, highlight=False)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")


def get_app() -> Conveyor:
    """The application named by ``CONVEYOR_APP``, or the built-in one."""
    from conveyor.app import load_app
    from conveyor.settings import Settings

    return load_app(Settings.load().app)


def wait_limit(timeout: float | None, settings: Settings) -> float | None:
    """``--timeout`` as a wait limit: the default when not given, no limit for 0."""
    chosen = settings.wait_timeout_s if timeout is None else timeout
    return chosen or None


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


#: ``MM-DD HH:MM:SS``: a time of the last days in a narrow column.
SHORT = "%m-%d %H:%M:%S"
#: ``YYYY-MM-DD HH:MM``: a date in a narrow column.
DATE = "%Y-%m-%d %H:%M"


def utc_time(ts: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A unix time as ``YYYY-MM-DD HH:MM:SS`` (UTC, or ``fmt``), or ``-`` when there is none."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)
