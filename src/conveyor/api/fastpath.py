"""A fast path for the API's hot request, ``POST /api/v1/jobs``, as pure ASGI.

FastAPI's routing (it matches every route of every included router), dependency
solving (context, principal, scope, header, body) and its middleware layers cost
more CPU than the submission itself. :class:`SubmitFastPath` sits in front of the
app's whole middleware stack (:class:`FastPathAPI`) and answers the common case
directly: a JSON body within the size limit that validates as
:class:`JobSubmission`, sent with a known key that holds the ``submit`` scope. It
calls the same code the route does (:func:`service.accept`,
:func:`service.submit_status`) and answers the same bytes.

Anything else (no, malformed or unknown key, a missing scope, another content
type, a body that does not parse or validate, one over the size limit) goes on to
FastAPI unchanged (the body it read is replayed), so every error answer (401,
403, 413, 422 field errors) is the route's own. Errors of the submission itself
(422 payload errors, unknown type, 429, 503) are rendered by
:mod:`conveyor.api.errors` with the same handlers the app uses. The route stays
registered: it documents the operation in ``/openapi.json`` and serves whatever
falls through.
"""

from __future__ import annotations

import json

import redis
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api import service
from conveyor.api.auth import Principal
from conveyor.api.context import ApiContext
from conveyor.api.errors import dependency_error, error_response
from conveyor.api.keylimits import MAX_BODY_BYTES
from conveyor.api.schemas import JobSubmission
from conveyor.errors import ConveyorError

SUBMIT_PATH = "/api/v1/jobs"
_JSON_TYPE = b"application/json"


class SubmitFastPath:
    """Answers well-formed, authorized ``POST /api/v1/jobs`` without FastAPI's machinery."""

    def __init__(self, app: ASGIApp, ctx: ApiContext, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.ctx = ctx
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != SUBMIT_PATH
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        # The first of each header, as Starlette's ``Headers.get`` reads them.
        authorization: str | None = None
        content_type: bytes | None = None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"content-length" and length is None:
                length = value
        if (
            content_type is None
            or content_type.split(b";", 1)[0].strip().lower() != _JSON_TYPE
            or not _within(length, self.max_body)
        ):
            await self.app(scope, receive, send)
            return
        principal = await self._principal(authorization)
        if principal is None:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive, self.max_body)
        submission = _parse(body) if more is None else None
        if submission is None:
            await self.app(scope, _replay(body, more, receive), send)
            return
        try:
            # Blocking Redis calls: on the context's own threads (no AnyIO hop).
            job = await self.ctx.run_blocking(service.accept, self.ctx, principal, submission)
        except ConveyorError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except (redis.RedisError, SQLAlchemyError) as exc:
            await dependency_error(exc)(scope, receive, send)
            return
        content = job.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": service.submit_status(job),
                "headers": [
                    (b"content-length", b"%d" % len(content)),
                    (b"content-type", _JSON_TYPE),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _principal(self, authorization: str | None) -> Principal | None:
        """The caller if its key is known and may submit; None: let FastAPI answer.

        A key missing from the cache (new, or its entry expired) is looked up here,
        once for all the requests that carry it meanwhile; an unknown key, or a
        store that cannot be read, is left to the route's error answers.
        """
        try:
            principal = await self.ctx.principal_async(authorization)
        except (ConveyorError, SQLAlchemyError):
            return None
        return principal if principal.holds("submit") else None


class FastPathAPI(FastAPI):
    """A FastAPI app with :class:`SubmitFastPath` in front of its middleware stack.

    In front, so the hot request skips the error, telemetry and body-limit layers
    (the fast path keeps to the body limit itself, and hands on whatever would make
    them act); FastAPI's own request telemetry, when configured, still wraps it.
    ``state.ctx`` must hold the :class:`ApiContext` before the first request.
    """

    def build_middleware_stack(self) -> ASGIApp:
        """The app's middleware stack, behind the fast path."""
        return SubmitFastPath(super().build_middleware_stack(), self.state.ctx)


def _within(length: bytes | None, limit: int) -> bool:
    """Whether a declared ``Content-Length`` is a number within ``limit`` (413 is the app's)."""
    if length is None:
        return True  # a streamed body: counted while it is read
    try:
        return int(length) <= limit
    except ValueError:
        return False


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The request body, and the message that ended the read early, if any.

    The read stops early at a disconnect, or once the body passes ``limit`` (the
    last chunk read is then handed back as pending, for the app's size check).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), message
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _parse(body: bytes) -> JobSubmission | None:
    """The submission, as FastAPI would validate it (JSON, then the model); None if invalid."""
    if not body:
        return None
    try:
        return JobSubmission.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError):
        return None


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then goes on with the real one."""
    more = pending is not None and pending["type"] == "http.request"
    queued: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]
    if pending is not None:
        queued.append(pending)

    async def replayed() -> Message:
        if queued:
            return queued.pop(0)
        return await receive()

    return replayed
