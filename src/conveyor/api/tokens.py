"""Per-job read tokens: a browser follows one job's events without a tenant-wide key.

``POST /api/v1/jobs/{id}/token`` (any key that may read the job) answers a token
signed for that job alone, valid for ``CONVEYOR_JOB_TOKEN_TTL_S`` seconds. The
job's SSE (``?token=``) and WebSocket (``?access_token=``) endpoints accept it;
every other endpoint refuses it, since it is not an API key.
"""

from __future__ import annotations

import time

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from conveyor.api import service
from conveyor.api.auth import Principal
from conveyor.api.context import ApiContext
from conveyor.errors import NotFound, Unauthenticated

PURPOSE = "cvjob"


class JobToken(BaseModel):
    """A read token for one job's event streams."""

    job_id: str
    token: str
    expires_at: float


def is_job_token(value: str | None) -> bool:
    """Whether ``value`` has the shape of a job token (not an API key)."""
    return value is not None and value.startswith(f"{PURPOSE}.")


def issue(ctx: ApiContext, principal: Principal, job_id: str) -> JobToken:
    """A token for ``job_id``, if ``principal`` may read that job (404 otherwise)."""
    principal.require("read")
    service.visible_state(ctx, principal, job_id)
    ttl = ctx.settings.job_token_ttl_s
    now = time.time()
    token = ctx.signer(PURPOSE).sign({"job": job_id}, ttl, now=now)
    return JobToken(job_id=job_id, token=token, expires_at=now + ttl)


def check(ctx: ApiContext, token: str, job_id: str) -> None:
    """:class:`Unauthenticated` unless ``token`` is a live token for ``job_id``."""
    claims = ctx.signer(PURPOSE).verify(token)
    if claims.get("job") != job_id:
        raise Unauthenticated("this token is for another job")


async def authorize_stream(
    ctx: ApiContext, job_id: str, authorization: str | None, token: str | None
) -> Principal | None:
    """May this request follow ``job_id``'s events? An API key or a job token; raises if not.

    Returns the key's principal, or None for a job token (its holder reads as a
    ``read`` key would).
    """
    if token is not None:
        check(ctx, token, job_id)
        if await run_in_threadpool(service.load_state, ctx, job_id) is None:
            raise NotFound(f"no job {job_id}")
        return None
    principal = await ctx.principal_async(authorization)
    principal.require("read")
    await run_in_threadpool(service.visible_state, ctx, principal, job_id)
    return principal
