"""What the job routes do, apart from HTTP: submit, read, list, cancel, retry.

Every read checks the caller's tenant: a job of another tenant is reported as
missing (404), never as forbidden, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Any, cast

from conveyor import keys
from conveyor.api import redact
from conveyor.api.auth import Principal
from conveyor.api.context import ApiContext
from conveyor.api.schemas import Job, JobPage, JobResult, JobSubmission
from conveyor.api.submitpolicy import check_submission
from conveyor.client.job import Job as JobHandle
from conveyor.errors import Conflict, InvalidSubmission, NotFound
from conveyor.state import JobState


def scoped_idempotency_key(principal: Principal, key: str | None) -> str | None:
    """Idempotency keys are per tenant: another tenant's key never matches."""
    if key is None:
        return None
    return f"{keys.tenant_scope(principal.tenant)}/{key}"


def submit(
    ctx: ApiContext, principal: Principal, body: JobSubmission, batch_id: str | None = None
) -> Job:
    """Validate and enqueue one job for the caller's tenant (its queue and priority checked
    against the key by :func:`accept`, or by the batch route for each job)."""
    handle = ctx.app.submit(
        body.type,
        body.payload,
        priority=body.priority,
        queue=body.queue,
        delay=body.delay,
        eta=body.eta,
        idempotency_key=scoped_idempotency_key(principal, body.idempotency_key),
        tenant=principal.tenant,
        batch_id=batch_id,
        tags=body.tags or None,
    )
    # The state the submit wrote, when it tells it (no read back); otherwise the live
    # state: a deduplicated submit may answer an existing job that has failed an attempt.
    job = handle.submitted_state(Job)
    if job is None:
        job = live_job(ctx, handle.id, deduplicated=handle.deduplicated)
    return redact.job(principal, job)


def accept(ctx: ApiContext, principal: Principal, body: JobSubmission) -> Job:
    """``POST /api/v1/jobs``: check where the key may submit, count it against the key's
    rate limit (a refused submission costs nothing), then :func:`submit`."""
    check_submission(ctx.app, principal, body.type, body.queue, body.priority)
    ctx.limiter.hit(principal.key_id)
    return submit(ctx, principal, body)


def submit_status(job: Job) -> int:
    """The status ``POST /api/v1/jobs`` answers: 200 for an existing job, else 202."""
    return 200 if job.deduplicated else 202


def live_job(ctx: ApiContext, job_id: str, deduplicated: bool = False) -> Job:
    """The job's live state read straight into the wire model (one pydantic pass)."""
    raw = ctx.app.redis.hgetall(keys.job(job_id))
    if not raw:
        raise NotFound(f"no job {job_id}")
    # from_hash builds ``cls(...)``: called on Job, it returns a Job.
    job = cast(Job, Job.from_hash(job_id, cast(dict[bytes, bytes], raw)))
    job.deduplicated = deduplicated
    return job


def load_state(ctx: ApiContext, job_id: str) -> JobState | None:
    """The job's live state, else its state in the store, else None."""
    raw = ctx.app.redis.hgetall(keys.job(job_id))
    if raw:
        return JobState.from_hash(job_id, cast(dict[bytes, bytes], raw))
    return stored_state(ctx, job_id)


def stored_state(ctx: ApiContext, job_id: str) -> JobState | None:
    """The job's state in the store (once its live state has expired), else None."""
    record = ctx.store().get_job(job_id)
    return None if record is None else record.to_state()


def visible_state(ctx: ApiContext, principal: Principal, job_id: str) -> JobState:
    """The job's state if the caller may see it; :class:`NotFound` otherwise."""
    state = load_state(ctx, job_id)
    if state is None or not principal.sees(state.tenant):
        raise NotFound(f"no job {job_id}")
    return state


def get_job(ctx: ApiContext, principal: Principal, job_id: str) -> Job:
    """One job."""
    return redact.job(principal, Job(**visible_state(ctx, principal, job_id).model_dump()))


def list_jobs(
    ctx: ApiContext,
    principal: Principal,
    *,
    status: str | None,
    type: str | None,
    queue: str | None,
    since: float | None,
    limit: int,
    cursor: str | None,
) -> JobPage:
    """A page of the caller's jobs from the store, newest first."""
    try:
        records, next_cursor = ctx.store().list_jobs(
            status=status,
            type=type,
            queue=queue,
            tenant=principal.tenant_filter(),
            since=since,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:  # a cursor that is not one of ours
        raise InvalidSubmission(str(exc)) from None
    items = [redact.job(principal, Job(**record.to_state().model_dump())) for record in records]
    return JobPage(items=items, next_cursor=next_cursor)


def cancel(ctx: ApiContext, principal: Principal, job_id: str) -> tuple[bool, Job]:
    """Cancel a queued, scheduled or running job; :class:`Conflict` if it already finished."""
    state = visible_state(ctx, principal, job_id)
    if state.done:
        raise Conflict(f"job {job_id} is already {state.status}")
    cancelled = JobHandle(ctx.app, job_id).cancel()
    return cancelled, get_job(ctx, principal, job_id)


def retry(ctx: ApiContext, principal: Principal, job_id: str) -> Job:
    """Run a failed job again as a new job linked to it (``replay_of``)."""
    state = visible_state(ctx, principal, job_id)
    if state.status != "failed":
        raise Conflict(f"only a failed job can be retried; job {job_id} is {state.status}")
    payload: dict[str, Any] = state.payload or {}
    ctx.limiter.hit(principal.key_id)
    handle = ctx.app.submit(
        state.type,
        payload,
        priority=state.priority,
        queue=state.queue,
        tenant=state.tenant,
        batch_id=state.batch_id,
        tags=state.tags or None,
        replay_of=state.id,
    )
    return redact.job(principal, live_job(ctx, handle.id))


def result(ctx: ApiContext, principal: Principal, job_id: str) -> JobResult:
    """A succeeded job's result; :class:`Conflict` while it has none."""
    state = visible_state(ctx, principal, job_id)
    if state.status != "succeeded":
        raise Conflict(f"job {job_id} is {state.status}: it has no result")
    return JobResult(id=state.id, status=state.status, result=state.result)
