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
    from conveyor.engine.config import visibility_timeout

    app = make_app()

    @app.job("long.job", time_limit=7200, soft_time_limit=7000)
    def long_job(ctx: JobContext, params: Render) -> None: ...

    assert visibility_timeout(app.settings, app.definitions.values()) == 7200 * 1.25 + 300
    explicit = Settings(visibility_timeout_s=5000)
    with pytest.raises(ConfigurationError, match="reaches CONVEYOR_VISIBILITY_TIMEOUT_S"):
        visibility_timeout(explicit, app.definitions.values())


def test_visibility_timeout_covers_the_profiles_hard_limits() -> None:
    from dataclasses import replace

    from conveyor.engine.config import visibility_timeout
    from conveyor.topology import default_topology

    app = make_app()
    base = default_topology()
    batch = replace(base.profile("batch"), time_limit=9000.0, soft_time_limit=8000.0)
    topology = replace(base, profiles={**base.profiles, "batch": batch})
    assert visibility_timeout(app.settings, app.definitions.values(), topology) == 9000 * 1.25 + 300
    explicit = Settings(visibility_timeout_s=5000, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError) as info:
        visibility_timeout(explicit, app.definitions.values(), topology)
    message = str(info.value)
    assert "profiles.batch: time_limit 9000s" in message
    assert "CONVEYOR_VISIBILITY_TIMEOUT_S (5000s)" in message
    # The app builds its Celery config with its topology.
    with pytest.raises(ConfigurationError, match=r"profiles\.batch"):
        _ = Conveyor(explicit, topology=topology).celery


def test_worker_limits_flags_over_profile_over_settings() -> None:
    from dataclasses import replace

    from conveyor.timelimits import worker_limits
    from conveyor.topology import default_topology

    settings = Settings()  # CELERY_TASK_TIME_LIMIT 3600, soft 3300
    plain = default_topology().profile("processing")
    limited = replace(plain, time_limit=120.0, soft_time_limit=100.0)
    assert worker_limits(settings, plain) == (3600.0, 3300.0)
    assert worker_limits(settings, limited) == (120.0, 100.0)
    assert worker_limits(settings, limited, time_limit=60, soft_time_limit=50) == (60.0, 50.0)
    # A flag overrides one limit; the other stays the profile's.
    assert worker_limits(settings, limited, soft_time_limit=30) == (120.0, 30.0)
    # A hard limit of the worker's own keeps the settings' 300 s margin (≥ half of it).
    assert worker_limits(settings, plain, time_limit=1200) == (1200.0, 900.0)
    assert worker_limits(settings, replace(plain, time_limit=2.0)) == (2.0, 1.0)
    with pytest.raises(ConfigurationError, match=r"soft time limit \(150s\) must be below"):
        worker_limits(settings, limited, soft_time_limit=150)
    with pytest.raises(ConfigurationError, match="--time-limit must be"):
        worker_limits(settings, plain, time_limit=0)


def test_worker_limits_yield_to_the_job_types_own() -> None:
    from conveyor.worker.deadletter import DEAD_LETTER_TASK
    from conveyor.worker.process import apply_worker_limits

    app = Conveyor(Settings(redis_url="redis://127.0.0.1:1/0"))  # never connected

    @app.job("own.both", time_limit=600, soft_time_limit=500)
    def both(ctx: JobContext, params: Render) -> None: ...

    @app.job("own.hard", time_limit=900)
    def hard(ctx: JobContext, params: Render) -> None: ...

    tasks = app.celery.tasks
    apply_worker_limits(app.celery, app, 120.0, 100.0)
    limits = {name: (tasks[name].time_limit, tasks[name].soft_time_limit) for name in tasks}
    assert limits["own.both"] == (600, 500)
    assert limits["own.hard"] == (900, 100.0)  # per limit: the soft one is the worker's
    assert limits["diag.sleep"] == (120.0, 100.0)
    assert limits[DEAD_LETTER_TASK] == (120.0, 100.0)
    assert (app.celery.conf.task_time_limit, app.celery.conf.task_soft_time_limit) == (120, 100)


def test_a_worker_limit_reaching_the_visibility_timeout_is_refused() -> None:
    from conveyor.worker.process import _check_visibility

    app = make_app()
    _check_visibility({"visibility_timeout": 5000.0}, 4999.0, app)
    with pytest.raises(ConfigurationError, match=r"worker time limit 5000s reaches .*5000s"):
        _check_visibility({"visibility_timeout": 5000.0}, 5000.0, app)
