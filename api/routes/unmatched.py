"""The last route under /api/v1: requests no route matched, answered as precisely as the routes would.

Starlette matches a path parameter only up to the next `/`, and routes on the decoded path, so an id
holding a `/` (sent as `%2F`) either matched no route (a bare 404, unlike every other malformed id's
422) or split into two ids of another route. `KeepEncodedSlashes` keeps `%2F` encoded for routing,
so such an id reaches its route and fails its pattern there. This route catches what is still left
(a path with extra literal `/`s, an unknown endpoint, a wrong method), authenticates it like any
endpoint (no key → 401), and then compares the path with every documented path template, each
parameter widened to match anything:

  * a template matches and a parameter breaks its documented pattern      → 422 naming the parameter
  * a template matches with valid parameters (so only the method is wrong) → 405 with `Allow`
  * nothing matches                                                        → 404
  * only a trailing slash is extra                                         → 307 to the path without it

The templates and patterns come from the app's own OpenAPI description, so a new route is covered
without being listed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import authenticate
from api.keys import ApiKey
from api.problems import InvalidParam, NotFound, Unprocessable

router = APIRouter(include_in_schema=False)
_ENCODED_SLASH = re.compile(rb"%2f", re.IGNORECASE)
_ENCODED_SLASH_TEXT = re.compile(r"%2f", re.IGNORECASE)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """One documented path: `relaxed` matches it with any text (even `/`) in each parameter."""

    path: str
    methods: frozenset[str]
    relaxed: re.Pattern[str]
    """Matches the decoded path with anything in each parameter (shortest first)."""
    patterns: dict[str, re.Pattern[str]]
    max_lengths: dict[str, int]

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters of this template in a request path, or None when it is another path."""
        relaxed = self.relaxed.match(path)
        return relaxed.groupdict() if relaxed is not None else None

    def invalid_params(self, values: dict[str, str]) -> list[InvalidParam]:
        bad = []
        for name, value in values.items():
            limit = self.max_lengths.get(name)
            pattern = self.patterns.get(name)
            if "/" in value or (limit is not None and len(value) > limit) or (
                    pattern is not None and not pattern.search(value)):
                shown = pattern.pattern if pattern is not None else "one path segment"
                bad.append(InvalidParam(name=name, reason=f"{value[:40]!r} does not match {shown}"))
        return bad


def path_templates(openapi: dict[str, Any]) -> list[PathTemplate]:
    """Every path of an OpenAPI description, with its methods and its parameters' patterns."""
    templates = []
    for path, operations in openapi.get("paths", {}).items():
        patterns: dict[str, re.Pattern[str]] = {}
        max_lengths: dict[str, int] = {}
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param.get("in") != "path":
                    continue
                schema = param.get("schema", {})
                if "pattern" in schema:
                    patterns[param["name"]] = re.compile(schema["pattern"])
                if "maxLength" in schema:
                    max_lengths[param["name"]] = schema["maxLength"]
        parts = _PARAM.split(path)  # literal, name, literal, name, ..., literal
        relaxed = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
        templates.append(PathTemplate(path, frozenset(m.upper() for m in operations), re.compile(rf"\A{relaxed}\Z"),
                                      patterns, max_lengths))
    # Most literal text first: /sites/{site}/devices/{device} explains `park/devices/a%2Fb` better
    # (device is wrong) than /sites/{site} (site would be "park/devices/a/b").
    templates.sort(key=lambda t: -len(_PARAM.sub("", t.path)))
    return templates


def judge_unmatched(method: str, path: str, templates: list[PathTemplate]) -> str:
    """For a request to `path` that no route matched: raise its problem (see the module docstring),
    or return the path without its trailing slash when only that kept a route from matching."""
    stripped = path.rstrip("/")
    if stripped != path:
        for template in templates:
            values = template.match(stripped)
            if values is not None and method in template.methods and not template.invalid_params(values):
                return stripped
    allowed: set[str] = set()
    invalid: list[tuple[bool, list[InvalidParam]]] = []
    for template in templates:
        values = template.match(path)
        if values is None:
            continue
        bad = template.invalid_params(values)
        if bad:
            invalid.append((method in template.methods, bad))
        else:
            allowed |= template.methods
    if invalid:
        params = next((bad for serves, bad in invalid if serves), invalid[0][1])  # prefer one serving `method`
        raise Unprocessable("; ".join(f"{p.name}: {p.reason}" for p in params), params)
    if allowed and method not in allowed:
        raise HTTPException(405, f"{method} is not allowed on {path[:200]}; allowed: {', '.join(sorted(allowed))}",
                            headers={"Allow": ", ".join(sorted(allowed))})
    raise NotFound(f"no endpoint {path[:200]}; the OpenAPI description at /api/v1/openapi.json lists them")


@router.api_route("/{rest:path}", methods=_METHODS, response_model=None)
async def unmatched_api_path(request: Request, rest: str,
                             _: Annotated[ApiKey, Depends(authenticate)]) -> RedirectResponse:
    templates = getattr(request.app.state, "path_templates", None)
    if templates is None:
        templates = request.app.state.path_templates = path_templates(request.app.openapi())
    root = request.scope.get("root_path", "")
    path = request.scope["path"]
    canonical = judge_unmatched(request.method, path.removeprefix(root) if root else path, templates)
    query = request.url.query
    return RedirectResponse(root + quote(canonical, safe="/%") + (f"?{query}" if query else ""), status_code=307)


class KeepEncodedSlashes:
    """Pure ASGI middleware: route on the path with `%2F` left encoded (as Apache's
    `AllowEncodedSlashes NoDecode`). Ids never hold a `/`, so `inv%2Fmain` must stay one path
    segment and fail the id pattern (422), not become two segments that route somewhere else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and _ENCODED_SLASH.search(raw):
            text = raw.decode("latin-1")
            if unquote(text) == scope["path"]:  # the path is the whole raw path, decoded (no root_path quirks)
                scope = {**scope, "path": "%2F".join(unquote(part) for part in _ENCODED_SLASH_TEXT.split(text))}
        await self.app(scope, receive, send)
