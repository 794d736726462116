"""Helpers shared by the command modules: loading the app, printing JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console

from conveyor.app import Conveyor, load_app
from conveyor.settings import Settings

console = Console(highlight=False)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")


def get_app() -> Conveyor:
    """The application named by ``CONVEYOR_APP``, or the built-in one."""
    return load_app(Settings.load().app)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))


def utc_time(ts: float | None) -> str:
    """A unix time as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-`` when there is none."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
