"""FastAPI dependencies, as ``Annotated`` aliases the routers declare parameters with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from conveyor.api.auth import Principal
from conveyor.api.context import ApiContext
from conveyor.app import Conveyor

# Dependencies are ``async def`` on purpose: a sync dependency costs a thread-pool hop
# per request, and these never block (a key missing from the cache is looked up in
# the thread pool by :meth:`ApiContext.principal_async`).


async def get_context(request: Request) -> ApiContext:
    """The process's :class:`ApiContext`."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def get_app(ctx: Annotated[ApiContext, Depends(get_context)]) -> Conveyor:
    """The Conveyor application."""
    return ctx.app


async def get_store(ctx: Annotated[ApiContext, Depends(get_context)]) -> Any:
    """The job store."""
    return await run_in_threadpool(ctx.store)


async def get_principal(
    ctx: Annotated[ApiContext, Depends(get_context)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The authenticated caller (401 without a valid key)."""
    return await ctx.principal_async(authorization)


def scope(name: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, who must hold scope ``name`` (403 otherwise)."""

    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(name)
        return principal

    check.__name__ = f"require_{name}"
    return check


Context = Annotated[ApiContext, Depends(get_context)]
App = Annotated[Conveyor, Depends(get_app)]
Store = Annotated[Any, Depends(get_store)]
Reader = Annotated[Principal, Depends(scope("read"))]
Submitter = Annotated[Principal, Depends(scope("submit"))]
Admin = Annotated[Principal, Depends(scope("admin"))]
