"""Errors as RFC 9457 problem details (`application/problem+json`), one shape for every failure.

    ApiProblem                      raised by routes; carries status, title and a detail that says what to do
    ├── NotFound (404)
    ├── Conflict (409)
    ├── Unprocessable (422)         a request value we refuse (ids, times, ranges)
    └── Unavailable (503)           a server we depend on (InfluxDB, rules store) did not answer

FastAPI's own validation errors and HTTPExceptions are converted to the same shape, so clients
parse one error format. Any other exception is a 500 problem that names no internals: its text, the
URL or query it involved go to the log, under an `error_id` the response quotes.

A `detail` says what the client did wrong or what to do, never a server's URL, a library's
exception text or a query: those are logged where they happen, for the operator.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.security_headers import security_headers

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("facmon.api")


class InvalidParam(BaseModel):
    name: str
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem: `title` is per status, `detail` is this occurrence, in words to act on."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    invalid_params: list[InvalidParam] = []


class ApiProblem(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, invalid_params: list[InvalidParam] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid_params = invalid_params or []


class NotFound(ApiProblem):
    status = 404
    title = "Not Found"


class Conflict(ApiProblem):
    status = 409
    title = "Conflict"


class Unprocessable(ApiProblem):
    status = 422
    title = "Unprocessable Content"

    @classmethod
    def param(cls, name: str, reason: str) -> Unprocessable:
        return cls(f"{name}: {reason}", [InvalidParam(name=name, reason=reason)])


class Unavailable(ApiProblem):
    status = 503
    title = "Service Unavailable"


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 422: "Unprocessable Content", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": title, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status, title in _TITLES.items() if status in (401, 403, 404, 409, 413, 422, 429, 503)
}
"""Merge into a router's `responses=` so the OpenAPI description documents every error."""


def problem_body(status: int, detail: str, invalid_params: list[InvalidParam] | None = None) -> bytes:
    """The JSON of one problem document (for middleware that answers without a Response object)."""
    return Problem(title=_TITLES.get(status, "Error"), status=status, detail=detail,
                   invalid_params=invalid_params or []).model_dump_json().encode()


def problem_response(status: int, detail: str, invalid_params: list[InvalidParam] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=_TITLES.get(status, "Error"), status=status, detail=detail,
                   invalid_params=invalid_params or [])
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def internal_error(request: Request, exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    """A 500 problem for an exception no handler expected: the exception is logged with an error id,
    and the response quotes only that id."""
    error_id = secrets.token_hex(6)
    log.error("request failed", exc_info=exc,
              extra={"error_id": error_id, "method": request.method, "path": request.url.path[:200]})
    return problem_response(500, f"the server failed on this request (error id {error_id}); it is logged "
                                 "under that id, tell the operator", headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` a problem document. The 500 handler runs outside every middleware
    (Starlette's ServerErrorMiddleware), so it adds the security headers itself."""

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        docs_path = app.docs_url or ""
        headers = {name.decode(): value.decode() for name, value in security_headers(request.url.path, docs_path)}
        return internal_error(request, exc, headers)

    async def on_api_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        response = problem_response(exc.status, exc.detail, exc.invalid_params)
        return response

    async def on_http_exception(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        params = [InvalidParam(name=".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
                               reason=str(err["msg"])[:300]) for err in exc.errors()]
        detail = "; ".join(f"{p.name}: {p.reason}" for p in params[:5]) or "the request is not valid"
        return problem_response(422, detail, params)

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(ApiProblem, on_api_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
