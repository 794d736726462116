"""The worked example of docs/middleware.md, run as it stands."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings
from conveyor.errors import TransientError
from conveyor.testing import drain

DOC = Path(__file__).parents[3] / "docs" / "middleware.md"


def example() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [code] = [b for b in blocks if "class JobsTable" in b]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


class Input(BaseModel):
    fail: bool = False


def test_the_jobs_table_follows_each_job_to_its_end(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    db = tmp_path / "app.db"
    app = Conveyor(settings, middleware=[example()["JobsTable"](str(db))])

    @app.job("reports.build", queue="processing", retries=1, backoff=0.0)
    def build(ctx: JobContext, params: Input) -> dict[str, bool]:
        if params.fail:
            raise TransientError("the source database is down")
        return {"built": True}

    good = app.submit("reports.build", {})
    bad = app.submit("reports.build", {"fail": True})
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM jobs WHERE id = ?", (bad.id,)).fetchone() == (
            "queued",
        )
    drain(app, delayed_within_s=60)
    with sqlite3.connect(db) as conn:
        rows = dict(
            (row[0], row[1:])
            for row in conn.execute("SELECT id, status, attempts, error FROM jobs")
        )
    assert rows[good.id] == ("succeeded", 1, None)
    assert rows[bad.id] == ("failed", 2, "TransientError: the source database is down")
