"""List tables at 80 columns: ids whole, columns that do not fit dropped or folded."""

from __future__ import annotations

import dataclasses
import uuid

from rich.console import Console

from conveyor.cli.api import keys_table
from conveyor.cli.dlq import letters_table
from conveyor.cli.store import jobs_table
from conveyor.cli.workers import workers_table
from conveyor.client.deadletters import DeadLetter
from conveyor.services.apikeys import KeyInfo
from conveyor.store import JobRecord
from conveyor.worker.heartbeats import WorkerInfo

NOW = 1_764_650_000.0


def render(table: object) -> list[str]:
    console = Console(width=80, record=True)
    console.print(table)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    return lines


def header(lines: list[str]) -> str:
    return next(line for line in lines if line.strip())


def test_jobs_at_80_columns_show_whole_ids_with_type_status_and_time() -> None:
    records = [
        JobRecord(
            id=str(uuid.uuid4()),
            type="diag.sleep",
            queue="processing",
            status="failed",
            attempt=3,
            error_type="PermanentError",
            error_message="the input file /media/in/long-name.wav is not a WAV file " * 2,
            created_at=NOW - i,
            updated_at=NOW,
        )
        for i in range(3)
    ]
    lines = render(jobs_table(records, 80))
    for record in records:
        assert any(record.id in line for line in lines)
    row = next(line for line in lines if records[0].id in line)
    assert "diag.sleep" in row and "failed" in row and "12-02 04:33:20" in row
    assert "not shown at this width:" in "\n".join(lines)
    wide = render_wide(jobs_table(records, 200))
    assert "error" in header(wide) and "attempt" in header(wide)


def render_wide(table: object) -> list[str]:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text().splitlines()


def test_dead_letters_fold_the_error_and_keep_ids_whole() -> None:
    letters = [
        DeadLetter(
            job_id=str(uuid.uuid4()),
            type="audio.transcribe",
            queue="generation",
            error_type="UnknownJobType",
            error_message="no live worker serves audio.transcribe on queue generation",
            failed_at=NOW,
            expires_at=NOW + 86400,
        )
    ]
    lines = render(letters_table(letters, 80))
    text = "\n".join(lines)
    assert letters[0].job_id in text
    assert "error" in header(lines)
    assert "UnknownJobType" in text and "generation" in text  # folded, not cut


def test_workers_keep_names_whole() -> None:
    found = [
        WorkerInfo(
            name=f"generation-{i}@gpu-host-with-a-long-name.example.internal",
            profile="generation",
            queues=["generation-high", "generation"],
            concurrency=2,
            pid=40000 + i,
            host="gpu-host-with-a-long-name.example.internal",
            started_at=NOW - 60,
            last_heartbeat=NOW - 1,
            active=1,
        )
        for i in range(2)
    ]
    lines = render(workers_table(found, NOW, 80))
    for worker in found:
        assert any(worker.name in line for line in lines)
    assert "active" in header(lines)


def test_keys_show_dates_and_last_use() -> None:
    keys = [
        KeyInfo(
            id="k_" + uuid.uuid4().hex,
            tenant="demo",
            name="ci",
            scopes=["submit", "read"],
            created_at=NOW,
            last_used_at=NOW + 3600,
        ),
        KeyInfo(
            id="k_" + uuid.uuid4().hex, tenant="demo", name="", scopes=["admin"], created_at=NOW
        ),
    ]
    text = "\n".join(render(keys_table(keys, 80)))
    assert keys[0].id in text and keys[1].id in text
    assert "2025-12-02 " in text and "2025-12-02 05:33" in text and "never" in text
    keys[1] = dataclasses.replace(keys[1], revoked_at=NOW + 60)
    revoked = "\n".join(render(keys_table(keys, 80)))
    assert keys[1].id in revoked and "revoked 2025-12-02" in revoked
