"""A fast path for the API's hot request, ``POST /api/v1/jobs``, as pure ASGI middleware.

FastAPI's routing (it matches every route of every included router), dependency
solving (context, principal, scope, header, body) and its middleware layers cost
more CPU than the submission itself. This middleware answers the common case
directly: a JSON body that validates as :class:`JobSubmission`, sent with a key
that is in the auth cache and holds the ``submit`` scope. It calls the same code
the route does (:func:`service.accept`, :func:`service.submit_status`) and
answers the same bytes.

Anything else (no or unknown key, a key not yet cached, a missing scope, another
content type, a body that does not parse or validate) goes on to FastAPI
unchanged (the body it read is replayed), so every error answer (401, 403, 422
field errors) is the route's own. Errors of the submission itself (422 payload
errors, unknown type, 429, 503) are rendered by :mod:`conveyor.api.errors` with
the same handlers the app uses. The route stays registered: it documents the
operation in ``/openapi.json`` and serves whatever falls through.
"""

from __future__ import annotations

import json

import redis
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api import service
from conveyor.api.auth import Principal
from conveyor.api.context import ApiContext
from conveyor.api.errors import dependency_error, error_response
from conveyor.api.schemas import JobSubmission
from conveyor.errors import ConveyorError

SUBMIT_PATH = "/api/v1/jobs"


class SubmitFastPath:
    """Answers well-formed, authorized ``POST /api/v1/jobs`` without FastAPI's machinery."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

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
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
        json_body = (
            content_type is not None
            and content_type.split(b";", 1)[0].strip().lower() == b"application/json"
        )
        principal = self._principal(authorization)
        if principal is None or not json_body:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        submission = _parse(body)
        if submission is None or more is not None:
            await self.app(scope, _replay(body, more, receive), send)
            return
        try:
            # Blocking Redis calls: in the thread pool, as the route's sync handler runs.
            job = await run_in_threadpool(service.accept, self.ctx, principal, submission)
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
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def _principal(self, authorization: str | None) -> Principal | None:
        """The caller if it is known without I/O and may submit; None: let FastAPI decide."""
        try:
            principal = self.ctx.cached_principal(authorization)
        except ConveyorError:
            return None
        if principal is None or not principal.holds("submit"):
            return None
        return principal


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The request body; and the message that ended the read early (a disconnect), if any."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
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
    queued: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if pending is not None:
        queued.append(pending)

    async def replayed() -> Message:
        if queued:
            return queued.pop(0)
        return await receive()

    return replayed
