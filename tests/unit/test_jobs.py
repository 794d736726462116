from __future__ import annotations

import pytest
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings
from conveyor.errors import ConfigurationError, PayloadInvalid, UnknownJobType
from conveyor.jobs import backoff_delay


class Render(BaseModel):
    path: str
    width: int = 1920


def make_app() -> Conveyor:
    return Conveyor(Settings())


def test_job_decorator_records_the_model_and_options() -> None:
    app = make_app()

    @app.job("video.render", queue="generation", priority=7, retries=2, time_limit=60)
    def render(ctx: JobContext, params: Render) -> None: ...

    definition = app.definition("video.render")
    assert definition.model is Render
    assert (definition.queue, definition.priority, definition.retries) == ("generation", 7, 2)
    assert definition.json_schema()["required"] == ["path"]


def test_job_without_a_model_is_refused() -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="pydantic model"):

        @app.job("bad.job", retries=1)
        def bad(ctx: JobContext, params: dict) -> None: ...  # type: ignore[type-arg]


def test_job_on_unknown_queue_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown queue"):
        make_app().job("x.y", queue="nowhere")


def test_duplicate_job_type_is_refused() -> None:
    app = make_app()
    with pytest.raises(ConfigurationError, match="already registered"):
        app.job("diag.noop", retries=0)(lambda ctx, params: None)


def test_payload_errors_are_field_level() -> None:
    definition = make_app().definition("diag.sleep")
    with pytest.raises(PayloadInvalid) as caught:
        definition.validate({"seconds": "soon", "steps": 0})
    fields = {e["field"]: e["message"] for e in caught.value.errors}
    assert set(fields) == {"seconds", "steps"}
    assert "greater than or equal to 1" in fields["steps"]


def test_unknown_job_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownJobType, match=r"known types: diag.flaky, diag.noop, diag.sleep"):
        make_app().definition("diag.nope")


def test_job_handle_by_id() -> None:
    app = make_app()
    job = app.job("0b7e2f5c-2f6e-4f55-9a55-2b4f0c7d9e11")
    assert job.id == "0b7e2f5c-2f6e-4f55-9a55-2b4f0c7d9e11"


def test_backoff_schedule_follows_the_list_and_caps() -> None:
    delays = [backoff_delay((60, 180, 540), attempt, cap_s=600, jitter=0) for attempt in range(4)]
    assert delays == [60, 180, 540, 540]
    assert backoff_delay(100.0, 3, cap_s=600, jitter=0) == 600
    spread = {round(backoff_delay((60,), 0, cap_s=600), 3) for _ in range(20)}
    assert all(54 <= d <= 66 for d in spread) and len(spread) > 1


def test_visibility_timeout_is_above_every_hard_limit() -> None:
    from conveyor.engine import visibility_timeout

    app = make_app()

    @app.job("long.job", time_limit=7200, soft_time_limit=7000)
    def long_job(ctx: JobContext, params: Render) -> None: ...

    assert visibility_timeout(app.settings, app.definitions.values()) == 7200 * 1.25 + 300
    explicit = Settings(visibility_timeout_s=5000)
    with pytest.raises(ConfigurationError, match="reaches CONVEYOR_VISIBILITY_TIMEOUT_S"):
        visibility_timeout(explicit, app.definitions.values())
