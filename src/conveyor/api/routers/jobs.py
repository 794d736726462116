"""``/api/v1/jobs``: submit, read, list, cancel, retry, result, and live events (SSE, WS)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, WebSocket, WebSocketDisconnect
from sse_starlette import EventSourceResponse, ServerSentEvent

from conveyor.api import redact, service, tokens
from conveyor.api.deps import Context, Reader, Submitter
from conveyor.api.schemas import CancelOutcome, Job, JobPage, JobResult, JobSubmission
from conveyor.api.sse import job_events, parse_last_event_id
from conveyor.errors import ConveyorError, InvalidSubmission, PermissionDenied, Unauthenticated
from conveyor.state import Status

router = APIRouter(prefix="/jobs", tags=["jobs"])

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
JobId = Annotated[str, Path(pattern=UUID_PATTERN, description="the job's id (a UUID)")]


@router.post(
    "",
    status_code=202,
    response_model=Job,
    responses={
        200: {"model": Job, "description": "an existing job with the same idempotency key"},
        413: {"description": "body over 1 MiB"},
        422: {"description": "invalid payload (field errors) or unknown type (known types)"},
        429: {"description": "rate limit exceeded; see Retry-After"},
    },
)
def submit_job(body: JobSubmission, ctx: Context, principal: Submitter) -> Response:
    """Validate a job against its type's model and enqueue it (202)."""
    job = service.accept(ctx, principal, body)
    # Serialized here, once: the hot path of the API skips FastAPI's re-validation.
    return Response(
        job.model_dump_json(), status_code=service.submit_status(job), media_type="application/json"
    )


@router.get("", response_model=JobPage)
def list_jobs(
    ctx: Context,
    principal: Reader,
    status: Status | None = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[float | None, Query(ge=0, description="unix seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobPage:
    """The caller's jobs from the job store, newest first, keyset-paginated."""
    return service.list_jobs(
        ctx,
        principal,
        status=status,
        type=type,
        queue=queue,
        since=since,
        limit=limit,
        cursor=cursor,
    )


@router.get("/{job_id}", response_model=Job)
def get_job(job_id: JobId, ctx: Context, principal: Reader) -> Job:
    """One job's state (live, or from the store once its live state has expired)."""
    return service.get_job(ctx, principal, job_id)


@router.post("/{job_id}/cancel", response_model=CancelOutcome)
def cancel_job(job_id: JobId, ctx: Context, principal: Submitter) -> CancelOutcome:
    """Cancel a queued, scheduled or running job (409 if it already finished)."""
    cancelled, job = service.cancel(ctx, principal, job_id)
    return CancelOutcome(cancelled=cancelled, job=job)


@router.post("/{job_id}/retry", status_code=202, response_model=Job)
def retry_job(job_id: JobId, ctx: Context, principal: Submitter) -> Job:
    """Run a failed job again as a new job (its ``replay_of`` names this one)."""
    return service.retry(ctx, principal, job_id)


@router.post("/{job_id}/token", response_model=tokens.JobToken)
def job_token(job_id: JobId, ctx: Context, principal: Reader) -> tokens.JobToken:
    """A short-lived token that lets a browser follow this job's SSE/WebSocket events only."""
    return tokens.issue(ctx, principal, job_id)


@router.get("/{job_id}/result", response_model=JobResult)
def job_result(job_id: JobId, ctx: Context, principal: Reader) -> JobResult:
    """A succeeded job's return value (409 while it has none)."""
    return service.result(ctx, principal, job_id)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def job_events_sse(
    job_id: JobId,
    ctx: Context,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    token: Annotated[
        str | None, Query(max_length=512, description="a job token (POST …/token)")
    ] = None,
) -> EventSourceResponse:
    """Server-Sent Events: the job's state, then each event live, closing after a terminal one.

    Reconnect with ``Last-Event-ID`` to receive exactly the events missed. A browser
    that cannot send a key authenticates with ``?token=`` (``POST /jobs/{id}/token``).
    """
    resume = parse_last_event_id(last_event_id)
    principal = await tokens.authorize_stream(ctx, job_id, authorization, token)

    async def stream() -> Any:
        async for event_id, event in job_events(ctx, job_id, resume):
            yield ServerSentEvent(
                data=json.dumps(redact.event(principal, event), separators=(",", ":"), default=str),
                event=str(event.get("type", "message")),
                id=event_id,
            )

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})


@router.websocket("/{job_id}/ws")
async def job_events_ws(
    websocket: WebSocket,
    job_id: JobId,
    last_event_id: Annotated[str | None, Query(max_length=64)] = None,
    access_token: Annotated[str | None, Query(max_length=256)] = None,
) -> None:
    """The same stream as ``/events`` over a WebSocket: one JSON message per event,
    ``{"id": …, "event": {…}}``. Authenticate with the ``Authorization`` header (or
    ``?access_token=`` with a key or a job token where a client cannot set headers); resume
    with ``?last_event_id=``. Closes with 1000 after a terminal event, 4401/4403/4404/4422
    on refusal."""
    ctx = websocket.app.state.ctx
    header = websocket.headers.get("authorization")
    job_token = access_token if tokens.is_job_token(access_token) else None
    if header is None and access_token and job_token is None:
        header = f"Bearer {access_token}"
    try:
        resume = parse_last_event_id(last_event_id)
        principal = await tokens.authorize_stream(ctx, job_id, header, job_token)
    except ConveyorError as exc:
        code = 4404
        if isinstance(exc, PermissionDenied):
            code = 4403
        elif isinstance(exc, InvalidSubmission):
            code = 4422
        elif isinstance(exc, Unauthenticated):
            code = 4401
        # Accept first: a close before the handshake reaches the client as a bare HTTP 403.
        await websocket.accept()
        await websocket.close(code=code, reason=str(exc)[:120])
        return
    await websocket.accept()
    try:
        async for event_id, event in job_events(ctx, job_id, resume):
            shown = redact.event(principal, event)
            await websocket.send_text(
                json.dumps({"id": event_id, "event": shown}, separators=(",", ":"), default=str)
            )
        await websocket.close(code=1000)
    except WebSocketDisconnect:
        return
