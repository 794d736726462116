"""``conveyor submit``, ``status``, ``watch`` and ``cancel``."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape

from conveyor.cli.common import (
    JSON_OPTION,
    console,
    get_app,
    print_json,
    stderr_console,
    wait_limit,
)
from conveyor.cli.render import EXIT_FOR_STATUS, follow, outcome_line, state_table


def parse_payload(payload: str | None, pairs: list[str]) -> dict[str, Any]:
    """``--payload`` JSON merged with ``key=value`` pairs (values parsed as JSON if they can be)."""
    data: dict[str, Any] = {}
    if payload is not None:
        try:
            parsed = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="'--payload'") from None
        if not isinstance(parsed, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="'--payload'")
        data.update(parsed)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="'PARAMS'")
        try:
            data[key] = json.loads(raw)
        except json.JSONDecodeError:
            data[key] = raw
    return data


def submit(
    job_type: str = typer.Argument(..., metavar="TYPE", help="The job type, e.g. diag.sleep."),
    params: list[str] = typer.Argument(None, metavar="[PARAMS]...", help="key=value pairs."),
    payload: str | None = typer.Option(None, "--payload", help="The payload as a JSON object."),
    priority: int | None = typer.Option(
        None, "--priority", min=0, max=10, help="0–10, 10 most urgent."
    ),
    queue: str | None = typer.Option(None, "--queue", help="Override the job type's queue."),
    delay: float | None = typer.Option(
        None, "--delay", min=0, help="Start no sooner than this many seconds."
    ),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        min=0,
        help="With --wait: give up after this many seconds (default CONVEYOR_WAIT_TIMEOUT_S, "
        "600; 0: no limit). The job goes on; exit code 4.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Submit a job. With --wait, follow it and exit 0 only if it succeeds."""
    data = parse_payload(payload, params or [])
    app = get_app()
    if queue is not None and queue not in app.topology.queues:
        raise typer.BadParameter(
            f"unknown queue {queue!r}; known queues: {', '.join(app.topology.queue_names())}",
            param_hint="'--queue'",
        )
    job = app.submit(
        job_type, data, priority=priority, queue=queue, delay=delay, idempotency_key=idempotency_key
    )
    target = queue or app.queue_for(app.definition(job_type))
    from conveyor.worker.heartbeats import unserved

    def why() -> str | None:
        return unserved(app.redis, app.settings.heartbeat_s, job_type, target)

    reason = why()
    if reason is not None and not wait:
        stderr_console.print(f"[yellow]warning:[/] {escape(reason)}")
    if not wait:
        if as_json:
            print_json({"id": job.id, "deduplicated": job.deduplicated})
        else:
            note = (
                " (existing job with the same idempotency/unique key)" if job.deduplicated else ""
            )
            console.print(f"{job.id}{note}")
        return
    if not as_json:
        console.print(f"job {job.id} ({job_type})")
        state = follow(job, timeout=wait_limit(timeout, app.settings), why=why)
        console.print(outcome_line(state))
    else:
        if reason is not None:
            stderr_console.print(f"[yellow]waiting:[/] {escape(reason)}")
        state = job.wait(timeout=wait_limit(timeout, app.settings))
        print_json(state.model_dump(mode="json"))
    raise typer.Exit(EXIT_FOR_STATUS.get(state.status, 1))


def status(job_id: str, as_json: bool = JSON_OPTION) -> None:
    """Show everything known about one job."""
    state = get_app().get_job(job_id).state()
    if as_json:
        print_json(state.model_dump(mode="json") | {"wait_s": state.wait_s, "run_s": state.run_s})
    else:
        console.print(state_table(state))


def watch(
    job_id: str,
    timeout: float | None = typer.Option(
        None, "--timeout", min=0, help="Give up after this many seconds (default 600; 0: never)."
    ),
) -> None:
    """Follow a job with a progress bar; exit 0 if it succeeds."""
    app = get_app()
    job = app.get_job(job_id)
    first = job.state()  # an unknown id is refused before any progress bar is drawn
    from conveyor.worker.heartbeats import unserved

    def why() -> str | None:
        if not (first.type and first.queue):
            return None
        return unserved(app.redis, app.settings.heartbeat_s, first.type, first.queue)

    state = follow(job, timeout=wait_limit(timeout, app.settings), why=why)
    console.print(outcome_line(state))
    raise typer.Exit(EXIT_FOR_STATUS.get(state.status, 1))


def cancel(job_id: str) -> None:
    """Cancel a job: a queued one never starts, a running one stops at its next progress report."""
    job = get_app().get_job(job_id)
    if job.cancel():
        console.print(f"cancelled {job_id}")
    else:
        state = job.state()
        console.print(f"{job_id} is already {state.status}; nothing to cancel")
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    """Add this module's commands to ``cli``."""
    cli.command()(submit)
    cli.command()(status)
    cli.command()(watch)
    cli.command()(cancel)
