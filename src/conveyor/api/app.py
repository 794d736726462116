"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from conveyor import dashboard
from conveyor.api import docs, errors
from conveyor.api.context import ApiContext
from conveyor.api.fastpath import FastPathAPI
from conveyor.api.keylimits import BodyLimit
from conveyor.api.metrics import build_registry
from conveyor.api.routers import (
    batches,
    dead_letters,
    job_types,
    jobs,
    monitoring,
    queues,
    scaling,
    schedules,
    system,
    workers,
)
from conveyor.api.schemas import ErrorBody
from conveyor.api.submitpolicy import is_platform_job
from conveyor.app import Conveyor

API_PREFIX = "/api/v1"


def create_app(conveyor: Conveyor | None = None, *, auth: bool = True) -> FastAPI:
    """The HTTP API for ``conveyor`` (the built-in app when None).

    ``auth=False`` lets every request act as an admin: only for a loopback bind
    (``conveyor api`` enforces that).
    """
    ctx = ApiContext(conveyor or Conveyor(), auth=auth)
    ctx.registry, event_metrics = build_registry(ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.start()
        assert ctx.hub is not None
        ctx.hub.observe(event_metrics.observe)
        try:
            yield
        finally:
            await ctx.stop()

    app = FastPathAPI(
        title="Conveyor",
        version="1",
        description="Typed job submission, live progress, queues, workers, dead letters "
        "and monitoring. Authenticate with `Authorization: Bearer <key>` "
        "(`conveyor keys create`).",
        lifespan=lifespan,
        docs_url=None,  # served from local files: conveyor.api.docs
        redoc_url=None,
    )
    app.state.ctx = ctx
    docs.install(app)
    errors.install(app)
    api = APIRouter(prefix=API_PREFIX)
    for module in (jobs, batches, job_types, queues, workers, dead_letters, monitoring, scaling):
        api.include_router(module.router)
    api.include_router(schedules.router)
    app.include_router(api)
    app.include_router(system.router)
    dashboard.install(app)
    # POST /api/v1/jobs is answered ahead of this stack (FastPathAPI); the rest is limited.
    app.add_middleware(BodyLimit)
    app.openapi = lambda: _openapi(app, ctx)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, ctx: ApiContext) -> dict[str, Any]:
    """The OpenAPI document, with every job type's payload schema under components."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    schema["security"] = [{"bearer": []}]
    definitions = components.setdefault("schemas", {})
    _document_errors(schema, definitions)
    for name, definition in sorted(ctx.app.definitions.items()):
        if is_platform_job(ctx.app, definition):
            continue  # the platform's own (upkeep.*): admins only, not advertised
        payload = definition.json_schema()
        payload.setdefault("description", f"payload of {name}")
        for nested_name, nested in payload.pop("$defs", {}).items():
            definitions.setdefault(nested_name, nested)
        definitions[f"payload:{name}"] = _relink(payload)
    app.openapi_schema = schema
    return schema


#: Error answers any ``/api/v1`` operation may give, documented on each.
_ERRORS = {
    "401": "missing, unknown or revoked API key",
    "403": "the key lacks the scope",
    "404": "no such resource (or another tenant's)",
    "409": "the resource's state does not allow it",
    "413": "body over 1 MiB",
    "405": "method not allowed here (Allow lists those that are)",
    "422": "invalid request: field errors, or a body that is not a JSON object (json_invalid)",
    "429": "rate limit exceeded (Retry-After)",
    "503": "broker or job store unreachable",
}


def _document_errors(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Every error answer has the :class:`ErrorBody` shape; say so on every operation."""
    error_body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = error_body.pop("$defs", {})
    definitions["ErrorBody"] = error_body
    definitions.update(nested)
    definitions.pop("HTTPValidationError", None)
    definitions.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in schema.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for code, description in _ERRORS.items():
                entry = responses.setdefault(code, {"description": description})
                if entry.get("description") == "Validation Error":  # FastAPI's generic one
                    entry["description"] = description
                entry["content"] = {"application/json": {"schema": ref}}


def _relink(node: Any) -> Any:
    """Point pydantic's ``#/$defs/X`` references at ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {
            k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else _relink(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_relink(v) for v in node]
    return node
