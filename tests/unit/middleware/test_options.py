"""Each ``@app.job`` option belongs to a middleware: without it installed, the option
is refused at declaration with the name of the middleware to install."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Middleware, Settings
from conveyor.errors import ConfigurationError
from conveyor.middleware import (
    DeadLetters,
    DeliveryLimit,
    FlowerEvents,
    Gpu,
    Leases,
    Progress,
    RateLimits,
    Retries,
    TimeLimits,
    default_middleware,
)


class Empty(BaseModel):
    pass


def job(ctx: JobContext, params: Empty) -> None:
    return None


def without(
    settings: Settings, kind: type[Middleware], *extra: Middleware, packs: tuple[str, ...] = ()
) -> Conveyor:
    defaults = [mw for mw in default_middleware() if not isinstance(mw, kind)]
    return Conveyor(settings, default_middleware=defaults, middleware=extra, packs=packs)


def test_the_defaults_in_order() -> None:
    assert [type(mw) for mw in default_middleware()] == [
        TimeLimits,
        Gpu,
        RateLimits,
        DeliveryLimit,
        Retries,
        DeadLetters,
        FlowerEvents,
        Progress,
        Leases,
    ]


def test_user_middleware_comes_after_the_defaults(settings: Settings) -> None:
    mine = Middleware()
    app = Conveyor(settings, middleware=[mine], packs=[])
    assert app.middleware[-1] is mine
    assert [type(mw) for mw in app.middleware[:-1]] == [type(mw) for mw in default_middleware()]


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        (RateLimits, {"rate_limit": "10/m"}),
        (Retries, {"retries": 3}),
        (Retries, {"backoff": 2.0}),
        (Retries, {"transient": [KeyError]}),
        (TimeLimits, {"time_limit": 60.0}),
        (TimeLimits, {"soft_time_limit": 30.0}),
        (Gpu, {"gpu": "prefer"}),
    ],
)
def test_an_option_without_its_middleware_is_refused(
    settings: Settings, kind: type[Middleware], options: dict[str, Any]
) -> None:
    app = without(settings, kind)
    name = next(iter(options))
    with pytest.raises(ConfigurationError, match=rf"{name}= needs the {kind.__name__} middleware"):
        app.job("t.job", **options)(job)
    assert "t.job" not in app.definitions


def test_core_and_neutral_options_need_no_middleware(settings: Settings) -> None:
    app = Conveyor(settings, default_middleware=[], packs=[])
    app.job("t.core", queue="processing", priority=5, unique=True, retries=0, gpu="none")(job)
    assert app.definition("t.core").priority == 5


def test_a_replacement_that_owns_the_option_is_accepted(settings: Settings) -> None:
    class MyRateLimits(Middleware):
        options = frozenset({"rate_limit"})

    app = without(settings, RateLimits, MyRateLimits())
    app.job("t.limited", rate_limit="10/m")(job)
    assert app.definition("t.limited").rate_limit == "10/m"


@pytest.mark.parametrize("pack", ["diag", "upkeep", "media"])
def test_a_built_in_pack_loads_without_the_middleware_its_options_need(
    settings: Settings, pack: str
) -> None:
    bare = Conveyor(settings, default_middleware=[], packs=[pack])
    full = Conveyor(settings, packs=[pack])
    assert set(bare.definitions) == set(full.definitions) and bare.definitions
    if pack == "diag":
        # Its options are declared where their middleware is installed only.
        flaky, bare_flaky = full.definition("diag.flaky"), bare.definition("diag.flaky")
        assert (flaky.retries, flaky.backoff) == (5, (0.2, 0.4, 0.8))
        assert (bare_flaky.retries, bare_flaky.backoff) == (None, None)
        assert without(settings, Retries, packs=("diag",)).definition("diag.flaky").retries is None
