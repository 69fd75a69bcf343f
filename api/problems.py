"""Errors as RFC 9457 problem+json bodies."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from lodestone.db import DatabaseUnavailable, unavailable
from lodestone.storage.base import StorageFull
from lodestone.temporal_client import unreachable
from services.errors import Conflict, Invalid, NotFound, RateLimited

log = logging.getLogger("lodestone.api")

MEDIA_TYPE = "application/problem+json"
# SQLSTATEs for text Postgres cannot hold (a NUL in text or jsonb): the input is at fault, not the server.
UNSTORABLE_TEXT = {"22021", "22P05"}
STORAGE_FULL_RETRY_AFTER = "60"


class Problem(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers, self.extra = status, code, detail, headers, extra


# The documented shape of every problem body; `errors` and `pointer` say which input was wrong.
# `errors` lists {loc, msg} for a request that does not parse (validation_error), and
# {pointer, message, code} for a definition checked whole (a state machine): every problem,
# the first one also in code, detail and pointer.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "pointer": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["loc", "msg"],
                        "properties": {
                            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "msg": {"type": "string"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["pointer", "message", "code"],
                        "properties": {
                            "pointer": {"type": "string"},
                            "message": {"type": "string"},
                            "code": {"type": "string"},
                        },
                    },
                ]
            },
        },
    },
}
DESCRIPTIONS = {
    400: "the body is malformed (not UTF-8 JSON, a bad Content-Length)",
    401: "no valid bearer token",
    403: "the token's roles do not allow this, or its tenant does not exist (`unknown_tenant`)",
    404: "not found, or not the caller's",
    408: "the request body stalled for more than REQUEST_BODY_IDLE_TIMEOUT_SECONDS",
    409: "conflicts with the current state",
    413: "the body is too large",
    416: "the Range is not satisfiable",
    422: "the request is not valid",
    429: "rate limited; see Retry-After",
    503: "a dependency is unavailable; try again",
    507: "the object store is full; see Retry-After",
}


def responses(*statuses: int, descriptions: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for statuses answered with a problem body."""
    described = {**DESCRIPTIONS, **(descriptions or {})}
    return {s: {"description": described[s], "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}} for s in statuses}


# Every route behind a bearer token can answer these.
AUTHENTICATED = responses(
    401,
    403,
    503,
    descriptions={
        503: "the token issuer's keys could not be fetched, PostgreSQL or Temporal did not answer, or every database "
        "connection was busy (see Retry-After)"
    },
)


def route_template(scope: Any, unmatched: str = "an unmatched route") -> str:
    """What a log line or a metric names a request by: its route's template (/v1/jobs/{job_id}),
    never its path, which carries input (ids, form slugs)."""
    return getattr(scope.get("route"), "path", unmatched)


def problem_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://lodestone.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


# What an outage answers: 503 and when to try again.
RETRY_AFTER = {"Retry-After": "5"}


def temporal_unavailable(detail: str = "Temporal did not answer; try again") -> Problem:
    return Problem(503, "temporal_unavailable", detail, headers=RETRY_AFTER)


def database_unavailable() -> JSONResponse:
    return problem_response(503, "database_unavailable", "the database did not answer; try again", RETRY_AFTER)


def database_busy() -> JSONResponse:
    return problem_response(503, "database_busy", "every database connection is in use; try again", RETRY_AFTER)


def not_found(kind: str, ident: object) -> Problem:
    return Problem(404, "not_found", f"{kind} {ident} not found")


# The body middlewares (api.limits, api.body_timeout, api.strict_json) answer these on every
# route that takes a body, whatever the route itself declares.
BODY_ANSWERS = (400, 408, 413)


def document_body_answers(app: FastAPI) -> None:
    """Every operation with a request body lists BODY_ANSWERS in its OpenAPI responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        for status, answer in responses(*BODY_ANSWERS).items():
                            operation["responses"].setdefault(str(status), answer)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    document_body_answers(app)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem_response(404, "not_found", str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return problem_response(409, exc.code, exc.detail)

    @app.exception_handler(Invalid)
    async def _refused(_: Request, exc: Invalid) -> JSONResponse:
        extra: dict[str, Any] = {} if exc.pointer is None else {"pointer": exc.pointer}
        if exc.errors is not None:
            extra["errors"] = exc.errors
        return problem_response(422, exc.code, exc.detail, **extra)

    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return problem_response(
            429, "rate_limited", exc.detail, {"Retry-After": str(max(1, round(min(exc.retry_after, 3600) + 0.5)))}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem_response(422, "validation_error", "the request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(StorageFull)
    async def _full(request: Request, exc: StorageFull) -> JSONResponse:
        log.warning("object store full on %s %s", request.method, route_template(request.scope))
        # Connection: close: the body may not have been read to its end.
        return problem_response(
            507,
            "storage_full",
            "the object store has no room for this now; retry later",
            headers={"Retry-After": STORAGE_FULL_RETRY_AFTER, "Connection": "close"},
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, route_template(request.scope))
        return problem_response(500, "internal_error", "an internal error occurred")

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if getattr(exc.orig, "sqlstate", None) in UNSTORABLE_TEXT:
            return problem_response(
                422, "invalid_text", "the request holds text that cannot be stored, such as a NUL character"
            )
        if unavailable(exc):
            log.warning(
                "database unavailable on %s %s: %s", request.method, route_template(request.scope), type(exc).__name__
            )
            return database_unavailable()
        return await _crash(request, exc)

    # PostgreSQL or Temporal out of reach is an outage, not the API's fault: 503 with Retry-After.
    @app.exception_handler(DatabaseUnavailable)
    async def _no_database(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, route_template(request.scope), exc)
        return database_unavailable()

    # Every pooled connection in use past the pool's timeout: overload, not a fault.
    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database pool exhausted on %s %s", request.method, route_template(request.scope))
        return database_busy()

    # RuntimeError: a lazy client's first connect that fails says so with no RPCError.
    @app.exception_handler(RPCError)
    @app.exception_handler(RuntimeError)
    async def _temporal(request: Request, exc: Exception) -> JSONResponse:
        if not unreachable(exc):
            return await _crash(request, exc)
        log.warning(
            "temporal unavailable on %s %s: %s", request.method, route_template(request.scope), type(exc).__name__
        )
        return await _problem(request, temporal_unavailable())
