"""``conveyor up`` and ``conveyor worker``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import typer
from rich.table import Table

from conveyor.cli.common import console, get_app
from conveyor.errors import Conflict
from conveyor.scaling.stack import hand_to_manager
from conveyor.services.supervisor import ServiceSpec, Stack, already_up, plan_services, plan_workers
from conveyor.topology import Topology, load_topology


def up(
    profiles: str = typer.Option(
        "", "--profiles", help="Comma-separated profiles to run (default: every profile)."
    ),
    concurrency: list[str] = typer.Option(
        [], "--concurrency", "-c", help="PROFILE=N, e.g. -c processing=4 (repeatable)."
    ),
    grace: float = typer.Option(
        30.0, "--grace", min=0, help="Seconds running jobs get to finish on Ctrl-C."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the HTTP API binds."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port of the HTTP API."),
) -> None:
    """Start the whole stack: the broker (embedded unless configured) and the workers."""
    from conveyor.settings import Settings

    settings = Settings.load()
    topology = load_topology(settings.config_file)
    sizes = {}
    for item in concurrency:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit() or int(value) < 1:
            raise typer.BadParameter(
                f"expected PROFILE=N with N ≥ 1, got {item!r}", param_hint="'--concurrency'"
            )
        sizes[name] = int(value)
    chosen = [p.strip() for p in profiles.split(",") if p.strip()] or None
    reason = already_up(settings)
    if reason is not None:  # before anything is printed: this is the one real reason
        raise Conflict(reason)
    workers, services = hand_to_manager(
        settings,
        topology,
        plan_workers(topology, chosen, sizes),
        _api_if_free(plan_services(settings, host, port), host, port),
        grace,
        sizes,
    )
    stack = Stack(settings, workers, services)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            stack.request_stop()

    # SIGHUP too: closing the terminal must stop the stack, not orphan it (every
    # process of the stack runs in its own session and would outlive `up`).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stack.start()
    try:
        _print_stack(stack, topology)
        stack.supervise()
    finally:
        _say(
            f"\n[bold]Stopping[/]: running jobs get {grace:g}s to finish, "
            "then go back to their queues…"
        )
        stack.stop(grace_s=grace)
        _say("[green]Stopped.[/]")


def _say(text: str) -> None:
    """Print a line if stdout still takes it: the terminal may be gone (SIGHUP), or the
    reader of a pipe (`up | tee`, whose tee dies with Ctrl-C). Rich answers a broken
    pipe with SystemExit, which must not skip the shutdown."""
    with contextlib.suppress(OSError, SystemExit):
        console.print(text)


def _api_if_free(services: list[ServiceSpec], host: str, port: int) -> list[ServiceSpec]:
    """Leave the API out (saying so) when its port is taken, rather than restart it in a loop."""
    from conveyor.cli.api import port_free

    if port_free(host, port):
        return services
    console.print(
        f"[yellow]Port {port} on {host} is in use: the HTTP API is not started[/] "
        "(use --port, or run `conveyor api --port N` yourself)."
    )
    return [s for s in services if s.name != "api"]


def _print_stack(stack: Stack, topology: Topology) -> None:
    from conveyor.worker.sizing import pool_size

    command = _command()
    where = "embedded Valkey" if stack.embedded else "configured"
    console.print(f"[bold green]Conveyor is up.[/] Home: {stack.home}")
    from conveyor.settings import mask_url

    console.print(f"Broker ({where}): {mask_url(stack.broker_url)}")
    processes = stack.processes()
    if processes:
        table = Table("worker", "queues", "concurrency", "pid", "log")
        for spec, pid, log_path in processes:
            size = pool_size(
                stack.settings, topology.profile(spec.profile), override=spec.concurrency
            )
            table.add_row(
                spec.name, ", ".join(spec.queues), size.describe(), str(pid), str(log_path)
            )
        console.print(table)
    for service, pid, log_path in stack.service_processes():
        console.print(f"{service.name}: pid {pid}, log {log_path}")
        if service.name == "autoscale":
            managed = service.argv[2] if len(service.argv) > 2 else ""
            console.print(
                f"  runs and scales the workers of: {managed.replace(',', ', ')}\n"
                f"  (logs in {stack.home / 'logs'}/PROFILE-N.log; "
                "list them with `conveyor workers`)"
            )
        if service.name == "api":
            host, port = service.argv[2], service.argv[4]
            console.print(
                f"  HTTP API: http://{host}:{port}/docs — it needs a key; make one with\n"
                f"  {command} keys create --tenant default --scopes submit,read"
            )
    same = "same directory"
    if "CONVEYOR_HOME" in os.environ:
        same += f", with CONVEYOR_HOME={os.environ['CONVEYOR_HOME']}"
    console.print(
        f"In another terminal ({same}):\n"
        f'  {command} submit diag.sleep --payload \'{{"seconds": 3, "steps": 6}}\' --wait\n'
        f"  {command} queues\n"
        "Press Ctrl-C to stop."
    )


def _command() -> str:
    """How to run ``conveyor`` from this directory: the script this stack was started with."""
    script = Path(sys.argv[0])
    if script.name != "conveyor" or not script.is_file():
        return f"{sys.executable} -m conveyor"
    path = script.absolute()
    try:
        return str(path.relative_to(Path.cwd()))  # `make up`: .venv/bin/conveyor
    except ValueError:
        return str(path)


def worker(
    profile: str = typer.Option("processing", "--profile", "-p", help="Worker profile to run."),
    concurrency: int | None = typer.Option(None, "--concurrency", "-c", min=1),
    name: str | None = typer.Option(None, "--name", "-n", help="Worker name (PROFILE-N@host)."),
    pool: str | None = typer.Option(None, "--pool", help="prefork, procs, threads or solo."),
    queues: str | None = typer.Option(
        None, "--queues", "-Q", help="Override the profile's queues."
    ),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l"),
    gpus: str | None = typer.Option(
        None, "--gpus", help="'all' or GPU indices (0,1): one worker process per GPU."
    ),
    prefetch: int | None = typer.Option(None, "--prefetch", min=1, help="Prefetch multiplier."),
    max_tasks_per_child: int | None = typer.Option(
        None, "--max-tasks-per-child", min=1, help="Replace a pool process after N jobs."
    ),
    time_limit: float | None = typer.Option(
        None,
        "--time-limit",
        min=0.001,
        help="Hard time limit (s) for jobs whose type sets none (kills the pool process).",
    ),
    soft_time_limit: float | None = typer.Option(
        None,
        "--soft-time-limit",
        min=0.001,
        help="Soft time limit (s): SoftTimeLimitExceeded inside jobs whose type sets none.",
    ),
    pidfile: Path | None = typer.Option(
        None, "--pidfile", help="Write the worker's pid here; refuse to start if it is alive."
    ),
    logfile: Path | None = typer.Option(None, "--logfile", help="Log to this file."),
    detach: bool = typer.Option(
        False, "--detach", "-D", help="Run in the background (as a daemon) and print its pid."
    ),
) -> None:
    """Run one worker for a profile (in the foreground unless --detach)."""
    from conveyor.worker.process import run_worker

    if detach:
        from conveyor.settings import Settings
        from conveyor.worker.daemon import detach as start_detached

        settings = Settings.load()
        target = logfile or settings.home_dir / "logs" / f"worker-{profile}.log"
        pid = start_detached(sys.argv[1:], target)
        console.print(f"worker started in the background: pid {pid}, log {target}")
        return

    if pool is not None and pool not in ("prefork", "procs", "threads", "solo"):
        raise typer.BadParameter("must be prefork, procs, threads or solo", param_hint="'--pool'")
    logging.basicConfig(
        level=loglevel.upper(),
        format="[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
        filename=logfile,
    )
    app = get_app()
    from conveyor.broker.outage import wait_until_reachable

    wait_until_reachable(
        app.broker_url,
        timeout_s=app.settings.broker_connect_timeout_s,
        wait_s=app.settings.broker_wait_s,
    )
    if gpus is not None:
        from conveyor.monitor.gpu import detect_gpus
        from conveyor.worker.gpu import run_per_gpu, select_gpus

        indices = select_gpus(gpus, detect_gpus())
        app.topology.profile(profile)
        passed = [
            f"--{k}={v}"
            for k, v in (
                ("concurrency", concurrency),
                ("pool", pool),
                ("queues", queues),
                ("loglevel", loglevel),
                ("prefetch", prefetch),
                ("max-tasks-per-child", max_tasks_per_child),
                ("time-limit", time_limit),
                ("soft-time-limit", soft_time_limit),
            )
            if v is not None
        ]
        raise typer.Exit(run_per_gpu(passed, profile, indices))
    selected = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    run_worker(
        app,
        profile,
        concurrency=concurrency,
        name=name,
        pool=pool,
        queues=selected,
        loglevel=loglevel.upper(),
        prefetch=prefetch,
        max_tasks_per_child=max_tasks_per_child,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        daemon={
            k: str(v) for k, v in (("pidfile", pidfile), ("logfile", logfile)) if v is not None
        },
    )


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(up)
    cli.command()(worker)
