"""The one place where Conveyor's error tree becomes HTTP status codes.

=========================  ======  ============================================
error                      status  body
=========================  ======  ============================================
``PayloadInvalid``         422     ``detail`` + ``errors`` (field, message, type)
``UnknownJobType``         422     ``detail`` + ``known_types``
``InvalidSubmission``      422     ``detail``
``NotFound``               404     ``detail``
``Conflict``               409     ``detail``
``Unauthenticated``        401     ``detail`` (+ ``WWW-Authenticate: Bearer``)
``PermissionDenied``       403     ``detail``
``RateLimited``            429     ``detail`` (+ ``Retry-After``)
``BrokerError``            503     ``detail``
``StoreError``             503     ``detail``
``JobTimeoutError``        504     ``detail``
any other ConveyorError    500     ``detail``
=========================  ======  ============================================

FastAPI's own request validation errors are answered 422 in the same shape
(``detail`` + ``errors``) so clients parse one format; a body that is not a JSON
object (unparseable, missing, another content type) is always 422 with one
``errors`` entry of type ``json_invalid``. A method a path does not serve
(``OPTIONS`` included) is 405 with ``Allow`` naming every method it does serve.
A Redis or SQL driver error that no layer wrapped is a dependency outage too:
503, never a bare 500.
"""

from __future__ import annotations

import math
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from conveyor.errors import (
    BrokerError,
    Conflict,
    ConveyorError,
    InvalidSubmission,
    JobTimeoutError,
    NotFound,
    PayloadInvalid,
    PermissionDenied,
    RateLimited,
    StoreError,
    Unauthenticated,
    UnknownJobType,
)

#: (error class, status), most specific first: the first match wins.
STATUS: tuple[tuple[type[ConveyorError], int], ...] = (
    (UnknownJobType, 422),
    (InvalidSubmission, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (RateLimited, 429),
    (BrokerError, 503),
    (StoreError, 503),
    (JobTimeoutError, 504),
)


def status_for(exc: ConveyorError) -> int:
    """The HTTP status an error maps to."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: ConveyorError) -> dict[str, Any]:
    """The JSON body for an error."""
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, PayloadInvalid) and exc.job_type != "batch":
        body["errors"] = [dict(e, field=f"payload.{e['field']}".rstrip(".")) for e in exc.errors]
    elif isinstance(getattr(exc, "errors", None), list):
        body["errors"] = exc.errors  # type: ignore[attr-defined]
    if isinstance(exc, UnknownJobType):
        body["known_types"] = exc.known
    return body


def error_response(exc: ConveyorError) -> JSONResponse:
    """The response for an error (status, body and headers)."""
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers)


async def _conveyor_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    return error_response(exc)


#: The one answer to a body that is not a JSON object (422, ``errors[0].type`` "json_invalid").
NOT_JSON = "request body is not a JSON object (send one, with Content-Type: application/json)"


def _body_unreadable(err: Any) -> bool:
    """Whether a validation error says the body as a whole was not a parseable JSON object."""
    kind = err.get("type")
    whole_body = tuple(err.get("loc", ())) == ("body",)
    return kind == "json_invalid" or (
        whole_body and kind in ("missing", "model_attributes_type", "dict_type")
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(_body_unreadable(err) for err in exc.errors()):
        # Invalid JSON, no body, a non-JSON content type or a JSON non-object: one answer.
        error = {"field": "", "message": NOT_JSON, "type": "json_invalid"}
        return JSONResponse({"detail": NOT_JSON, "errors": [error]}, status_code=422)
    errors = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "message": str(err.get("msg", "invalid")),
            "type": str(err.get("type", "value_error")),
        }
        for err in exc.errors()
    ]
    return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path only;
        # GET and POST on /api/v1/jobs are two routes.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=headers or None
    )


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (for ``Allow``)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def dependency_error(exc: Exception) -> JSONResponse:
    """The response for a Redis or SQL driver error that no layer wrapped (503)."""
    wrapped: ConveyorError
    if isinstance(exc, redis.RedisError):
        wrapped = BrokerError(f"broker error: {type(exc).__name__}: {exc}")
    else:
        wrapped = StoreError(f"job store error: {type(exc).__name__}")
    return error_response(wrapped)


async def _dependency_error(request: Request, exc: Exception) -> JSONResponse:
    return dependency_error(exc)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(ConveyorError, _conveyor_error)
    app.add_exception_handler(redis.RedisError, _dependency_error)
    app.add_exception_handler(SQLAlchemyError, _dependency_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
