"""Outside ``/api/v1``: ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conveyor.api.deps import Context
from conveyor.api.schemas import Ready

router = APIRouter(tags=["system"])

#: These answer without an API key (probes and Prometheus scrapers send none): the
#: OpenAPI document says so, overriding the document-wide bearer requirement.
UNAUTHENTICATED: dict[str, object] = {"security": []}


@router.get("/healthz", openapi_extra=UNAUTHENTICATED)
def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked). No API key needed."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready}},
    openapi_extra=UNAUTHENTICATED,
)
def readyz(ctx: Context) -> JSONResponse:
    """200 when the broker and the job store answer, 503 (saying which does not) otherwise.

    No API key needed (for load balancers and orchestrators' probes)."""
    broker = None
    try:
        ctx.app.check_broker()
    except Exception as exc:
        broker = str(exc)
    store = ctx.check_store()
    ready = broker is None and store is None
    body = Ready(ready=ready, broker=broker, store=store)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    openapi_extra=UNAUTHENTICATED,
)
def metrics(ctx: Context) -> Response:
    """Prometheus metrics (celery-exporter names plus ``conveyor_*``). No API key needed:
    expose it only where scrapers are meant to reach it."""
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)
