"""``/api/v1/dead-letters``: failed jobs kept with their input; replay and purge (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from conveyor.api import redact, service
from conveyor.api.deps import Admin, Context, Reader
from conveyor.api.routers.jobs import UUID_PATTERN
from conveyor.api.schemas import Job
from conveyor.client import deadletters
from conveyor.client.deadletters import DeadLetter
from conveyor.errors import NotFound

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])

JobId = Annotated[str, Path(pattern=UUID_PATTERN)]


class ReplayFilter(BaseModel):
    """``POST /dead-letters/replay``: which dead letters to replay.

    At least one filter, or ``"all": true`` to replay every dead letter (422 otherwise).
    """

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(None, max_length=200)
    queue: str | None = Field(None, max_length=100)
    error_type: str | None = Field(None, max_length=255)
    since: StrictFloat | None = Field(None, ge=0)
    until: StrictFloat | None = Field(None, ge=0)
    tenant: str | None = Field(None, max_length=200)
    to_queue: str | None = Field(None, max_length=100)
    limit: StrictInt = Field(1000, ge=1, le=10_000)
    all: bool = Field(False, description="replay every dead letter (no filter given)")


class ReplayReport(BaseModel):
    """What a bulk replay did: dead job id → new job id, and refusals with reasons."""

    replayed: dict[str, str]
    refused: dict[str, str]


class Purged(BaseModel):
    """The dead letters deleted."""

    purged: list[str]


@router.get("", response_model=list[DeadLetter])
def list_dead_letters(
    ctx: Context,
    principal: Reader,
    type: Annotated[str | None, Query(max_length=200)] = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    error_type: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[float | None, Query(ge=0)] = None,
    until: Annotated[float | None, Query(ge=0)] = None,
    include_replayed: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetter]:
    """The caller's dead letters, most recently failed first."""
    letters = deadletters.list_dead_letters(
        ctx.app,
        type=type,
        queue=queue,
        error_type=error_type,
        since=since,
        until=until,
        tenant=principal.tenant_filter(),
        include_replayed=include_replayed,
        limit=limit,
        store=ctx.store(),
    )
    return [redact.dead_letter(principal, letter) for letter in letters]


def _visible(ctx: Context, principal: Reader, job_id: str) -> DeadLetter:
    letter = deadletters.get_dead_letter(ctx.app, job_id, store=ctx.store())
    if not principal.sees(letter.tenant):
        raise NotFound(f"no dead letter for job {job_id}")
    return letter


@router.get("/{job_id}", response_model=DeadLetter)
def get_dead_letter(job_id: JobId, ctx: Context, principal: Reader) -> DeadLetter:
    """One dead letter: input and error (and its traceback, for admins)."""
    return redact.dead_letter(principal, _visible(ctx, principal, job_id))


@router.post("/replay", response_model=ReplayReport)
def replay_matching(body: ReplayFilter, ctx: Context, principal: Admin) -> ReplayReport:
    """Replay every not-yet-replayed dead letter matching the filter (admin)."""
    report = deadletters.replay_matching(
        ctx.app,
        type=body.type,
        queue=body.queue,
        error_type=body.error_type,
        since=body.since,
        until=body.until,
        tenant=body.tenant,
        limit=body.limit,
        to_queue=body.to_queue,
        everything=body.all,
        store=ctx.store(),
    )
    return ReplayReport(replayed=report.replayed, refused=report.refused)


@router.post("/{job_id}/replay", status_code=202, response_model=Job)
def replay(job_id: JobId, ctx: Context, principal: Admin, force: bool = False) -> Job:
    """Submit the dead job again as a new job linked to it (admin; 409 if already replayed)."""
    handle = deadletters.replay(ctx.app, job_id, force=force, store=ctx.store())
    return service.live_job(ctx, handle.id)


@router.delete("/{job_id}", response_model=Purged)
def purge(job_id: JobId, ctx: Context, principal: Admin) -> Purged:
    """Delete one dead letter (admin)."""
    _visible(ctx, principal, job_id)
    return Purged(purged=deadletters.purge(ctx.app, job_id, store=ctx.store()))
