"""How a job looks in the terminal: its data is shown as JSON, never read as markup."""

from __future__ import annotations

from rich.console import Console

from conveyor.cli.render import outcome_line, state_table
from conveyor.state import JobError, JobState


def _render(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_job_data_with_brackets_is_printed_as_it_is() -> None:
    state = JobState(
        id="j1",
        type="files.copy",
        queue="processing",
        status="failed",
        payload={"src": "[/tmp/in]", "flag": True, "none": None},
        error=JobError(type="OSError", message="cannot read [/tmp/in] [bold]"),
    )
    text = _render(state_table(state))  # a MarkupError before the fix
    assert '{"src": "[/tmp/in]", "flag": true, "none": null}' in text
    assert "OSError: cannot read [/tmp/in] [bold]" in text
    assert "cannot read [/tmp/in] [bold]" in _render(outcome_line(state))


def test_result_is_json() -> None:
    state = JobState(
        id="j2", type="diag.sleep", queue="processing", status="succeeded", result={"ok": True}
    )
    assert 'result: {"ok": true}' in _render(outcome_line(state))


def test_progress_with_brackets_is_printed_as_it_is() -> None:
    from rich.progress import Progress

    from conveyor.cli import render

    console = Console(width=200, record=True)
    columns = render.progress_columns()
    with Progress(*columns, console=console) as bar:
        bar.add_task("j", total=100, status="started", stage="[/stage]", message="[bold] x")
    text = console.export_text()  # a MarkupError before the fix
    assert "[/stage]" in text and "[bold] x" in text
