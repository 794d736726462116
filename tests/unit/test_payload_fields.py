"""Payload fields a job type does not declare are refused, in Python and on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from conveyor import Conveyor, JobContext, Settings
from conveyor.errors import PayloadInvalid


class Sleep(BaseModel):
    seconds: float = 1.0


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    seconds: float = 1.0


def _app() -> Conveyor:
    app = Conveyor(Settings(redis_url="redis://127.0.0.1:1/0"), packs=())

    @app.job("t.strict")
    def strict(ctx: JobContext, params: Sleep) -> None:
        return None

    @app.job("t.loose")
    def loose(ctx: JobContext, params: Loose) -> dict[str, Any]:
        return params.model_dump()

    return app


def test_an_unknown_field_is_refused_with_its_name() -> None:
    definition = _app().definition("t.strict")
    with pytest.raises(PayloadInvalid) as caught:
        definition.validate({"secs": 3})
    assert [e["field"] for e in caught.value.errors] == ["secs"]
    assert "secs" in str(caught.value) and "seconds" in str(caught.value)


def test_unknown_and_invalid_fields_are_reported_together() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        _app().definition("t.strict").validate({"secs": 3, "seconds": "x"})
    assert {e["field"] for e in caught.value.errors} == {"secs", "seconds"}


def test_a_job_type_may_opt_in_to_extra_fields() -> None:
    params = _app().definition("t.loose").validate({"seconds": 2, "note": "kept"})
    assert params.model_dump() == {"seconds": 2.0, "note": "kept"}


def _conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "REDIS_"))}
    env.update(REDIS_URL="redis://127.0.0.1:1/0", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_submit_refuses_an_unknown_field_before_reaching_the_broker() -> None:
    done = _conveyor("submit", "diag.sleep", "--payload", '{"secs": 3}')
    assert done.returncode == 2, done.stderr
    assert "secs: unknown field" in done.stderr


def test_cli_jobs_refuses_an_unknown_status_as_the_api_does() -> None:
    done = _conveyor("jobs", "--status", "bogus")
    assert done.returncode == 2, done.stderr
    assert "unknown status 'bogus'" in done.stderr and "succeeded" in done.stderr
