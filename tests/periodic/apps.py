"""Applications the periodic-job tests run in ``conveyor beat`` and worker subprocesses."""

from __future__ import annotations

import time

import redis
from pydantic import BaseModel

from conveyor import Conveyor, JobContext, Settings

#: Counts the runs of ``test.resubmit`` (a key the test reads).
RUNS_KEY = "conveyor:test:resubmit:runs"


class TickInput(BaseModel):
    """Nothing: a tick is a tick."""


class ResubmitInput(BaseModel):
    """How many runs the chain should make in all."""

    runs: int = 3


def build(settings: Settings | None = None) -> Conveyor:
    """The test application: a schedule firing every second, and a self-resubmitting job."""
    app = Conveyor(settings, packs=("diag",))

    @app.periodic("tick", every=1.0, payload={}, queue="batch")
    @app.job("test.tick", retries=0)
    def tick(ctx: JobContext, params: TickInput) -> None:
        """Do nothing: the beat tests only count the runs."""

    @app.job("test.resubmit", unique=True, retries=0)
    def resubmit(ctx: JobContext, params: ResubmitInput) -> int:
        """Count this run, then submit the same job (same payload: same unique key) again."""
        runs = int(redis.Redis.from_url(app.broker_url).incr(RUNS_KEY))
        if runs < params.runs:
            app.submit("test.resubmit", params.model_dump(), delay=0.05)
        return runs

    @app.job("test.hang", retries=2)
    def hang(ctx: JobContext, params: TickInput) -> int:
        """The first attempt hangs without a word (its worker is then killed); later ones pass."""
        if ctx.attempt == 0:
            time.sleep(600)
        return ctx.attempt

    return app


app = build()
