"""A middleware may declare ``@app.job`` options of its own: kept on the definition,
read from hooks through ``ctx.options``; an undeclared keyword is refused by name."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Middleware, Settings
from conveyor.errors import ConfigurationError, PermanentError, SkipJob
from conveyor.testing import drain


class Empty(BaseModel):
    pass


class TenantQuota(Middleware):
    """Skips a job type's jobs once its ``tenant_quota`` is used up."""

    options = frozenset({"tenant_quota"})

    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def before_job(self, ctx: JobContext, params: Any) -> None:
        quota = ctx.options.get("tenant_quota")
        if quota is None:
            return
        self.used[ctx.job_type] = self.used.get(ctx.job_type, 0) + 1
        if self.used[ctx.job_type] > quota:
            raise SkipJob(f"quota of {quota} used up")


def job(ctx: JobContext, params: Empty) -> str:
    return "ran"


def test_a_declared_option_is_kept_and_read_by_its_middleware(
    settings: Settings, redis_client: redis.Redis
) -> None:
    app = Conveyor(settings, middleware=[TenantQuota()], packs=[])
    app.job("t.quota", queue="processing", retries=0, tenant_quota=2)(job)
    app.job("t.free", queue="processing")(job)
    definition = app.definition("t.quota")
    assert definition.options == {"tenant_quota": 2}
    assert app.definition("t.free").options == {}
    with pytest.raises(TypeError):
        definition.options["tenant_quota"] = 3  # type: ignore[index]
    jobs = [app.submit("t.quota", {}) for _ in range(3)] + [app.submit("t.free", {})]
    drain(app)
    assert [j.state().status for j in jobs] == ["succeeded", "succeeded", "cancelled", "succeeded"]


def test_an_undeclared_option_is_refused_by_name(settings: Settings) -> None:
    app = Conveyor(settings, middleware=[TenantQuota()], packs=[])
    with pytest.raises(
        ConfigurationError,
        match=r"'t.job': unknown option tenant_qouta=; no installed middleware declares it "
        r"\(job options: .*; declared by middleware: tenant_quota\)",
    ):
        app.job("t.job", tenant_qouta=2)(job)
    assert "t.job" not in app.definitions


def test_an_option_whose_middleware_is_not_installed_is_refused(settings: Settings) -> None:
    app = Conveyor(settings, packs=[])
    for value in (2, None):
        with pytest.raises(ConfigurationError, match="unknown option tenant_quota="):
            app.job("t.job", tenant_quota=value)(job)


DOC = Path(__file__).parents[3] / "docs" / "middleware.md"


def owners_example() -> type[Middleware]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [code] = [b for b in blocks if "class Owners" in b]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    owners: type[Middleware] = namespace["Owners"]
    return owners


def test_the_docs_example_tells_the_owner(settings: Settings, redis_client: redis.Redis) -> None:
    told: list[tuple[str, str]] = []
    app = Conveyor(settings, middleware=[owners_example()(lambda *m: told.append(m))], packs=[])

    @app.job("invoices.send", queue="processing", retries=0, owner="billing")
    def send(ctx: JobContext, params: Empty) -> None:
        raise PermanentError("no such customer")

    app.job("invoices.draft", queue="processing")(job)
    failed = app.submit("invoices.send", {})
    app.submit("invoices.draft", {})
    drain(app)
    assert told == [("billing", f"invoices.send {failed.id} failed: no such customer")]
    with pytest.raises(ConfigurationError, match="unknown option ownr="):
        app.job("invoices.void", ownr="billing")(job)
