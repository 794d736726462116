"""``conveyor deploy render compose|kubernetes|systemd``: deployment files from conveyor.toml."""

from __future__ import annotations

from pathlib import Path

import typer

from conveyor.cli.common import console
from conveyor.deploy import DEFAULT_IMAGE, DEFAULT_NAMESPACE, TARGETS
from conveyor.errors import ConfigurationError

deploy = typer.Typer(help="Deployment files (compose, Kubernetes, systemd) from the profiles.")


@deploy.command("render")
def render_command(
    target: str = typer.Argument(..., help="compose, kubernetes or systemd."),
    profiles: str = typer.Option(
        "", "--profiles", help="Comma-separated profiles (default: every profile)."
    ),
    namespace: str = typer.Option(DEFAULT_NAMESPACE, "--namespace", help="Kubernetes namespace."),
    image: str = typer.Option(DEFAULT_IMAGE, "--image", help="The Conveyor image to run."),
    out: Path = typer.Option(Path("deploy"), "--out", help="Directory to write the files in."),
) -> None:
    """Write TARGET's files from conveyor.toml's profiles and the settings."""
    from conveyor.deploy import make_plan, render, write
    from conveyor.settings import Settings
    from conveyor.topology import load_topology

    if target not in TARGETS:
        raise ConfigurationError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    settings = Settings.load()
    chosen = [p.strip() for p in profiles.split(",") if p.strip()] or None
    plan = make_plan(
        settings, load_topology(settings.config_file), chosen, image=image, namespace=namespace
    )
    for path in write(render(target, plan), out):
        console.print(f"wrote {path}")


def register(cli: typer.Typer) -> None:
    """Add the ``deploy`` command group to ``cli``."""
    cli.add_typer(deploy, name="deploy")
