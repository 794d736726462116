"""The dashboard's pages and form actions (server-rendered HTML).

Pages read with a session (see :mod:`conveyor.dashboard.session`); each action is
a POST form with the session's CSRF token, allowed to admin keys only, and answers
with a redirect back to the page it came from (post/redirect/get).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from conveyor import scaling
from conveyor.api import service, tokens
from conveyor.api.context import ApiContext
from conveyor.api.errors import status_for
from conveyor.api.routers.jobs import UUID_PATTERN
from conveyor.client import deadletters
from conveyor.dashboard import charts, queries
from conveyor.dashboard.render import render
from conveyor.dashboard.session import COOKIE, Sessions, Viewer
from conveyor.errors import (
    AccessDenied,
    ConveyorError,
    InvalidSubmission,
    NotFound,
    Unauthenticated,
)
from conveyor.state import Status
from conveyor.store.activity import recent_batches

router = APIRouter(include_in_schema=False)

JobId = Annotated[str, Path(pattern=UUID_PATTERN)]
Text = Annotated[str | None, Query(max_length=200)]
Form = dict[str, list[str]]
#: Only this site's script and styles (progress bars set an inline width); no framing.
CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.dashboard_sessions
    return sessions


def _local(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (never another host), else ``default``."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _with_notice(target: str, notice: str) -> str:
    joiner = "&" if "?" in target else "?"
    return f"{target}{joiner}{urlencode({'notice': notice[:300]})}"


def _page(
    request: Request, build: Callable[[Viewer], Response | tuple[str, dict[str, Any]]]
) -> Response:
    """Run ``build`` for the signed-in viewer; errors become pages, no session a sign-in."""
    try:
        viewer = _sessions(request).viewer(request.cookies.get(COOKIE))
    except Unauthenticated:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    try:
        built = build(viewer)
    except ConveyorError as exc:  # not found, not allowed, broker or store down: say so
        return _error(request, viewer, status_for(exc), str(exc))
    if isinstance(built, Response):
        return built
    template, data = built
    return _html(request, viewer, template, data)


def _html(
    request: Request, viewer: Viewer | None, template: str, data: dict[str, Any], status: int = 200
) -> HTMLResponse:
    ctx = _ctx(request)
    tenants = queries.known_tenants(ctx) if viewer is not None and viewer.admin else []
    body = render(
        template,
        request=request,
        viewer=viewer,
        tenants=tenants,
        notice=request.query_params.get("notice"),
        auth=ctx.auth,
        **data,
    )
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(body, status_code=status, headers=headers)


def _error(request: Request, viewer: Viewer, status: int, message: str) -> HTMLResponse:
    return _html(request, viewer, "error.html", {"status": status, "message": message}, status)


async def _form(request: Request) -> Form:
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body, keep_blank_values=True, max_num_fields=20_000)


def _one(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


async def _act(
    request: Request, back: str, action: Callable[[Viewer, Form], str]
) -> RedirectResponse:
    """A POST action: CSRF and admin checks, then ``action``; its notice goes back to ``back``."""
    form = await _form(request)
    target = _local(_one(form, "next"), back)

    def run() -> RedirectResponse:
        try:
            viewer = _sessions(request).viewer(request.cookies.get(COOKIE))
        except Unauthenticated:
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        try:
            viewer.check_csrf(_one(form, "csrf"))
            viewer.require_admin()
            notice = action(viewer, form)
        except ConveyorError as exc:  # refused (conflict, bad input, no scope): say why
            notice = str(exc)
        return RedirectResponse(_with_notice(target, notice), status_code=303)

    return await run_in_threadpool(run)


# ------------------------------------------------------------------ sign in


@router.get("/login")
def login_page(request: Request, next: Text = None) -> HTMLResponse:
    """The sign-in form."""
    return _html(request, None, "login.html", {"next": _local(next), "error": None})


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange an API key for a session cookie."""
    form = await _form(request)
    target = _local(_one(form, "next"))
    sessions = _sessions(request)
    try:
        cookie = await run_in_threadpool(sessions.sign_in, _one(form, "api_key") or "")
    except (Unauthenticated, AccessDenied) as exc:
        data = {"next": target, "error": str(exc)}
        return _html(request, None, "login.html", data, status=401)
    reply = RedirectResponse(target, status_code=303)
    _set_cookie(request, reply, cookie)
    return reply


def _set_cookie(request: Request, reply: Response, value: str) -> None:
    reply.set_cookie(
        COOKIE,
        value,
        max_age=int(_ctx(request).settings.dashboard_session_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    form = await _form(request)
    try:
        viewer = _sessions(request).viewer(request.cookies.get(COOKIE))
        viewer.check_csrf(_one(form, "csrf"))
    except (Unauthenticated, AccessDenied):
        return RedirectResponse("/login", status_code=303)
    reply = RedirectResponse("/login", status_code=303)
    reply.delete_cookie(COOKIE)
    return reply


@router.post("/tenant")
async def switch_tenant(request: Request) -> Response:
    """An admin chooses which tenant's jobs the pages list (empty: every tenant)."""
    form = await _form(request)
    target = _local(_one(form, "next"))
    try:
        sessions = _sessions(request)
        viewer = sessions.viewer(request.cookies.get(COOKIE))
        viewer.check_csrf(_one(form, "csrf"))
        cookie = sessions.switch_tenant(viewer, (_one(form, "tenant") or "").strip()[:200])
    except Unauthenticated:
        return RedirectResponse("/login", status_code=303)
    except AccessDenied as exc:
        return RedirectResponse(_with_notice(target, str(exc)), status_code=303)
    reply = RedirectResponse(target, status_code=303)
    _set_cookie(request, reply, cookie)
    return reply


# ------------------------------------------------------------------- pages


@router.get("/")
def overview_page(request: Request) -> Response:
    """Queues, running and scheduled jobs, throughput, workers, health."""

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        view = queries.overview(_ctx(request), viewer.tenant)
        return "overview.html", {"o": view, "chart": charts.throughput(view.activity)}

    return _page(request, build)


@router.get("/jobs")
def jobs_page(
    request: Request,
    status: Status | None = None,
    type: Text = None,
    queue: Text = None,
    tenant: Text = None,
    window: Text = None,
    q: Text = None,
    cursor: Text = None,
) -> Response:
    """Jobs newest first, filtered and searched, keyset-paginated."""

    def build(viewer: Viewer) -> Response | tuple[str, dict[str, Any]]:
        filters = queries.JobFilter(
            status=status,
            type=type or None,
            queue=queue or None,
            tenant=(tenant or viewer.tenant) if viewer.admin else viewer.tenant,
            window=window or None,
            q=q or None,
        )
        found = filters.job_id()
        if found:
            return RedirectResponse(f"/jobs/{found}", status_code=303)
        try:
            records, next_cursor = queries.list_jobs(_ctx(request), filters, cursor or None)
        except ValueError as exc:
            raise NotFound(str(exc)) from None
        params = {k: v for k, v in request.query_params.items() if k not in ("cursor", "notice")}
        return "jobs.html", {
            "jobs": records,
            "f": filters,
            "next_url": f"/jobs?{urlencode({**params, 'cursor': next_cursor})}"
            if next_cursor
            else None,
            "first_url": f"/jobs?{urlencode(params)}" if cursor else None,
            "windows": list(queries.WINDOWS),
            "statuses": list(Status.__args__),  # type: ignore[attr-defined]
            "live": cursor is None,
        }

    return _page(request, build)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: JobId) -> Response:
    """One job: live progress, payload, result, error, timeline, actions."""

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        ctx = _ctx(request)
        state = service.visible_state(ctx, viewer.principal, job_id)
        token = None if state.done else tokens.issue(ctx, viewer.principal, job_id).token
        return "job.html", {
            "job": state,
            "timeline": queries.timeline(ctx, state),
            "stream_url": f"/api/v1/jobs/{job_id}/events?token={token}" if token else None,
        }

    return _page(request, build)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: JobId) -> Response:
    """Cancel a queued or running job (admin)."""

    def action(viewer: Viewer, form: Form) -> str:
        cancelled, _ = service.cancel(_ctx(request), viewer.principal, job_id)
        return "cancelled" if cancelled else "the job had already finished"

    return await _act(request, f"/jobs/{job_id}", action)


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, job_id: JobId) -> Response:
    """Run a failed job again as a new job (admin)."""

    def action(viewer: Viewer, form: Form) -> str:
        job = service.retry(_ctx(request), viewer.principal, job_id)
        return f"retried as job {job.id}"

    return await _act(request, f"/jobs/{job_id}", action)


@router.get("/dead-letters")
def dead_letters_page(
    request: Request, type: Text = None, queue: Text = None, error_type: Text = None
) -> Response:
    """Dead letters, most recently failed first, filtered."""

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        ctx = _ctx(request)
        letters = deadletters.list_dead_letters(
            ctx.app,
            type=type or None,
            queue=queue or None,
            error_type=error_type or None,
            tenant=viewer.tenant,
            limit=200,
            store=ctx.store(),
        )
        filters = {"type": type or "", "queue": queue or "", "error_type": error_type or ""}
        return "dead_letters.html", {"letters": letters, "filters": filters}

    return _page(request, build)


@router.post("/dead-letters/confirm")
async def confirm_dead_letters(request: Request) -> Response:
    """Step one of a bulk replay or purge: list what it will touch and ask to confirm."""
    form = await _form(request)

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        viewer.check_csrf(_one(form, "csrf"))
        viewer.require_admin()
        action = _one(form, "action")
        if action not in ("replay", "purge"):
            raise NotFound("unknown dead-letter action")
        ctx = _ctx(request)
        chosen = [i for i in form.get("job_id", []) if queries.UUID.match(i)][:1000]
        letters = [
            letter
            for letter in (
                deadletters.get_dead_letter(ctx.app, i, store=ctx.store()) for i in chosen
            )
            if viewer.sees(letter.tenant)
        ]
        return "confirm.html", {"action": action, "letters": letters}

    return await run_in_threadpool(_page, request, build)


@router.post("/dead-letters/apply")
async def apply_dead_letters(request: Request) -> Response:
    """Step two: replay or purge the confirmed dead letters (admin)."""

    def action(viewer: Viewer, form: Form) -> str:
        ctx = _ctx(request)
        kind = _one(form, "action")
        done: list[str] = []
        refused: list[str] = []
        for job_id in form.get("job_id", [])[:1000]:
            if not queries.UUID.match(job_id):
                continue
            try:
                if kind == "replay":
                    deadletters.replay(ctx.app, job_id, store=ctx.store())
                elif kind == "purge":
                    deadletters.purge(ctx.app, job_id, store=ctx.store())
                done.append(job_id)
            except ConveyorError as exc:
                refused.append(f"{job_id[:8]}: {exc}")
        verb = "replayed" if kind == "replay" else "purged"
        notice = f"{verb} {len(done)} dead letter(s)"
        return notice + (f"; refused {len(refused)}: {'; '.join(refused[:3])}" if refused else "")

    return await _act(request, "/dead-letters", action)


@router.get("/workers")
def workers_page(request: Request) -> Response:
    """Live workers, and (for admins) the manager's view, decisions and pins."""

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        ctx = _ctx(request)
        status = scaling.status(ctx.app) if viewer.admin else None
        return "workers.html", {
            "workers": queries.workers(ctx),
            "scaling": status,
            "profiles": list(ctx.app.topology.profiles),
            "now": time.time(),
        }

    return _page(request, build)


@router.post("/workers/pin")
async def pin_profile(request: Request) -> Response:
    """Pin a profile to a worker count (admin)."""

    def action(viewer: Viewer, form: Form) -> str:
        profile = _one(form, "profile") or ""
        try:
            count = int(_one(form, "count") or "")
        except ValueError:
            raise InvalidSubmission("the worker count must be a whole number") from None
        scaling.pin(_ctx(request).app, profile, count)
        return f"{profile} pinned to {count} worker(s)"

    return await _act(request, "/workers", action)


@router.post("/workers/release")
async def release_profile(request: Request) -> Response:
    """Hand a pinned profile back to the autoscale policy (admin)."""

    def action(viewer: Viewer, form: Form) -> str:
        profile = _one(form, "profile") or ""
        released = scaling.release(_ctx(request).app, profile)
        return f"{profile} released" if released else f"{profile} was not pinned"

    return await _act(request, "/workers", action)


@router.get("/batches")
def batches_page(request: Request) -> Response:
    """The newest batches and the progress of each."""

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        found = recent_batches(_ctx(request).store(), viewer.tenant)
        return "batches.html", {"batches": found}

    return _page(request, build)


@router.get("/schedules")
def schedules_page(request: Request) -> Response:
    """Every periodic job: when it runs next, its last run and that run's job."""
    from conveyor import schedules

    def build(viewer: Viewer) -> tuple[str, dict[str, Any]]:
        found = schedules.views(_ctx(request).app)
        return "schedules.html", {"schedules": found, "now": time.time()}

    return _page(request, build)


@router.post("/schedules/{name}/{verb}")
async def schedule_action(request: Request, name: str, verb: str) -> Response:
    """Run a schedule now, pause or resume it (admin)."""
    from conveyor import schedules

    def action(viewer: Viewer, form: Form) -> str:
        app = _ctx(request).app
        if verb == "run-now":
            job_id = schedules.run_now(app, name)
            return f"{name}: job {job_id} submitted" if job_id else f"{name}: not submitted"
        if verb in ("pause", "resume"):
            schedules.set_paused(app, name, verb == "pause")
            return f"{name} {verb}d"
        raise NotFound(f"no schedule action {verb!r}; use run-now, pause or resume")

    return await _act(request, "/schedules", action)
