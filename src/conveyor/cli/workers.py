"""``conveyor workers``, ``scale``, ``autoscale`` and ``worker-probe``."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from conveyor.cli.common import JSON_OPTION, console, get_app, print_json
from conveyor.cli.tables import Col, fitted
from conveyor.errors import ConfigurationError, Conflict

if TYPE_CHECKING:
    from conveyor.app import Conveyor
    from conveyor.worker.heartbeats import WorkerInfo


def workers(as_json: bool = JSON_OPTION) -> None:
    """Every live worker: profile, host, pid, queues, concurrency, jobs, heartbeat, RSS, GPU."""
    from conveyor.worker.heartbeats import live_workers

    app = get_app()
    app.check_broker()
    found = live_workers(app.redis, app.settings.heartbeat_s)
    now = time.time()
    if as_json:
        print_json(
            [{**w.__dict__, "heartbeat_age_s": round(now - w.last_heartbeat, 3)} for w in found]
        )
        return
    table = workers_table(found, now, console.width)
    console.print(table)
    console.print(f"{len(found)} live worker(s)")


def workers_table(found: list[WorkerInfo], now: float, width: int) -> Table:
    """``conveyor workers`` as a table that fits ``width`` (names whole, see :mod:`.tables`)."""
    columns = [
        Col("worker"),
        Col("active", drop=1, justify="right"),
        Col("beat", drop=2, justify="right"),
        Col("queues", drop=3, fold=True),
        Col("pid", drop=4, justify="right"),
        Col("processed", drop=5, justify="right"),
        Col("RSS", drop=6, justify="right"),
        Col("GPU", drop=7),
        Col("conc.", drop=8, justify="right"),
        Col("profile", drop=9),
        Col("host", drop=10),
    ]
    rows = [
        [
            w.name,
            str(w.active),
            f"{now - w.last_heartbeat:.1f}s ago",
            ",".join(w.queues),
            str(w.pid),
            str(w.processed),
            f"{w.rss_bytes / 2**20:.0f} MiB" if w.rss_bytes else "-",
            w.gpu or "-",
            w.pool_size or str(w.concurrency),
            w.profile,
            w.host,
        ]
        for w in found
    ]
    return fitted(columns, rows, width)


def scale(
    profile: str | None = typer.Argument(None, help="Worker profile to pin."),
    count: int | None = typer.Argument(None, help="Number of workers to pin it to."),
    release: bool = typer.Option(False, "--release", help="Hand PROFILE back to autoscaling."),
    show: bool = typer.Option(False, "--status", help="Show the manager's view and decisions."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Pin PROFILE to N workers (until --release), or show the scaling status."""
    from conveyor import scaling

    if profile is not None and profile.startswith("-"):
        # Unknown options reach here as arguments (so that a negative count can).
        raise typer.BadParameter(f"no such option: {profile}")
    if count is not None and count < 0:
        raise ConfigurationError(f"worker count must be ≥ 0 (got {count})")
    app = get_app()
    app.check_broker()
    if show or profile is None:
        _print_status(scaling.status(app), as_json)
        return
    if release:
        if count is not None:
            raise typer.BadParameter("--release takes no count")
        was = scaling.release(app, profile)
        console.print(f"{profile}: released to autoscaling" if was else f"{profile} was not pinned")
        return
    if count is None:
        raise typer.BadParameter("give a worker count (or --release / --status)")
    scaling.pin(app, profile, count)
    manager = scaling.status(app, decisions=0)["manager"]
    console.print(
        f"{profile}: pinned to {count} worker(s) until `conveyor scale {profile} --release`"
    )
    if manager is None:
        console.print(
            "[yellow]no worker manager is running[/]; the pin applies when "
            "`conveyor autoscale` (or `conveyor up`) starts"
        )


def _print_status(data: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    manager = data["manager"]
    if isinstance(manager, dict):
        console.print(
            f"manager: pid {manager['pid']} on {manager['host']}, {manager['backend']} back end, "
            f"every {manager['poll_s']:g}s"
        )
    else:
        console.print("[yellow]manager: not running[/]")
    table = Table("profile", "workers", "desired", "min–max", "pinned", "backlog", "why")
    profiles = data["profiles"]
    assert isinstance(profiles, dict)
    for name, view in sorted(profiles.items()):
        table.add_row(
            name,
            str(view.get("current", "?")),
            str(view.get("desired", "?")),
            f"{view.get('min', '?')}–{view.get('max', '?')}",
            "-" if view.get("pinned") is None else str(view["pinned"]),
            str(view.get("backlog", "?")),
            str(view.get("error") or view.get("reason", "")),
        )
    console.print(table)
    unhealthy = data.get("unhealthy_workers") or []
    assert isinstance(unhealthy, list)
    for entry in unhealthy:
        console.print(
            f"[red]unhealthy[/]: {entry['name']} (heartbeat {entry['heartbeat_age_s']:.0f}s old)"
        )
    decisions = data["decisions"]
    assert isinstance(decisions, list)
    for entry in decisions[:10]:
        stamp = time.strftime("%H:%M:%S", time.localtime(entry["ts"]))
        console.print(f"{stamp} {entry['profile']}: {entry['action']} — {entry['reason']}")


def autoscale(
    profiles: str = typer.Option(
        "", "--profiles", help="Comma-separated profiles (default: CONVEYOR_AUTOSCALE_PROFILES)."
    ),
    bounds: list[str] = typer.Option(
        [], "--bounds", help="PROFILE=MIN:MAX worker bounds, e.g. processing=2:8 (repeatable)."
    ),
    once: bool = typer.Option(
        False, "--once", help="Run one round and exit (local workers stop with it)."
    ),
    concurrency: list[str] = typer.Option(
        [],
        "--concurrency",
        "-c",
        help="PROFILE=N processes per local worker, e.g. -c processing=4 (repeatable).",
    ),
    grace: float | None = typer.Option(
        None,
        "--grace",
        min=0,
        help="Seconds running jobs get to finish on stop.",
    ),
) -> None:
    """Run the worker manager: scale each profile on its backlog, check health, replace."""
    from conveyor import scaling
    from conveyor.scaling import make_backend
    from conveyor.scaling.backends.local import LocalBackend
    from conveyor.scaling.manager import Manager
    from conveyor.scaling.metrics import serve_metrics
    from conveyor.settings import Settings

    logging.basicConfig(
        level=Settings.load().log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = get_app()
    from conveyor.broker.outage import wait_until_reachable

    wait_until_reachable(
        app.broker_url,
        timeout_s=app.settings.broker_connect_timeout_s,
        wait_s=app.settings.broker_wait_s,
    )
    running = scaling.running_manager(app) if once else None
    if running is not None:
        # Its workers carry the names this round would give new ones: refuse to double them.
        raise Conflict(
            f"a worker manager already runs (pid {running.get('pid')} on {running.get('host')}, "
            f"{running.get('backend')} back end, profiles {', '.join(running.get('profiles', []))})"
            "; pin a count with `conveyor scale PROFILE N` instead, or stop that manager first"
        )
    chosen = [p.strip() for p in profiles.split(",") if p.strip()] or None
    backend = make_backend(app, _parse_sizes(app, concurrency))
    manager = Manager(app, backend, chosen, _parse_bounds(bounds))
    if once:
        failed = [s for s in manager.tick() if s.error]
        for status in failed:
            typer.echo(f"error: profile {status.profile}: {status.error}", err=True)
        if failed:
            # The workers were kept as they are; the round itself did not succeed.
            raise typer.Exit(1)
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # SIGTERM/SIGINT: warm stop (running jobs finish); SIGQUIT: cold (jobs go back).
        if signum == signal.SIGQUIT and isinstance(backend, LocalBackend):
            backend.request_cold()
        manager.stop()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, on_signal)
    server = serve_metrics(app, app.settings.autoscale_metrics_port)
    try:
        manager.run()
    finally:
        if server is not None:
            server.shutdown()
        backend.close(app.settings.autoscale_grace_s if grace is None else grace)


def _parse_sizes(app: Conveyor, items: list[str]) -> dict[str, int]:
    sizes = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit() or int(value) < 1:
            raise ConfigurationError(f"--concurrency: expected PROFILE=N with N ≥ 1, got {item!r}")
        app.topology.profile(name)
        sizes[name] = int(value)
    return sizes


def _parse_bounds(items: list[str]) -> dict[str, tuple[int, int]]:
    found = {}
    for item in items:
        name, sep, rest = item.partition("=")
        low, sep2, high = rest.partition(":")
        if not sep or not sep2 or not low.isdigit() or not high.isdigit():
            raise ConfigurationError(f"--bounds: expected PROFILE=MIN:MAX, got {item!r}")
        if int(low) > int(high):
            raise ConfigurationError(f"--bounds {item}: min {low} is above max {high}")
        found[name] = (int(low), int(high))
    return found


def worker_probe(
    file: Path | None = typer.Option(
        None, "--file", help="Heartbeat file (default: CONVEYOR_HEARTBEAT_FILE)."
    ),
    name: str | None = typer.Option(None, "--name", help="Worker name (its file under home)."),
    max_age: float | None = typer.Option(
        None, "--max-age", help="Seconds (default: CONVEYOR_WORKER_STALE_S, 3 heartbeats)."
    ),
) -> None:
    """Liveness probe: exit 0 if the worker's heartbeat file is fresh, 1 otherwise."""
    from conveyor.scaling.health import heartbeat_file_for, probe, stale_after_s
    from conveyor.settings import Settings

    settings = Settings.load()
    if file is None:
        if name is None and settings.heartbeat_file is None:
            raise ConfigurationError("give --file or --name, or set CONVEYOR_HEARTBEAT_FILE")
        file = heartbeat_file_for(settings, name or "")
    ok, message = probe(file, max_age if max_age is not None else stale_after_s(settings))
    typer.echo(message)
    if not ok:
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(workers)
    # A negative count (`scale processing -1`) must reach the count check, not
    # be taken for an unknown option.
    cli.command(context_settings={"ignore_unknown_options": True})(scale)
    cli.command()(autoscale)
    cli.command("worker-probe")(worker_probe)
