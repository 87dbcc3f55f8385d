"""Browser security headers on every response: the status page keeps a key in localStorage and shows
an Acknowledge button, so no other site may frame it (clickjacking), no injected script may run in
it, and no response may be sniffed into something executable.

    every response         X-Content-Type-Options: nosniff, X-Frame-Options: DENY, Referrer-Policy: no-referrer
    /status/...            Content-Security-Policy: STATUS_PAGE_CSP (its own files only; no inline script or style)
    /api/v1/docs           Content-Security-Policy: DOCS_CSP (Swagger UI from its CDN, with FastAPI's inline script)
    everything else        Content-Security-Policy: API_CSP (JSON and text load nothing)
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATUS_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                   "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""api/static holds no inline script, style or handler; `form-action 'none'` keeps the key form from
ever being submitted (it is handled by script), so a key never lands in a URL."""
DOCS_CSP = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
"""FastAPI's Swagger page loads Swagger UI from jsDelivr and starts it with an inline script that
holds nothing from the request; it stores no key."""
API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

COMMON = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"))


def csp_for(path: str, docs_path: str) -> str:
    """The Content-Security-Policy of the response to `path` (the root-relative request path)."""
    if path == "/status" or path.startswith("/status/"):
        return STATUS_PAGE_CSP
    if path == docs_path:
        return DOCS_CSP
    return API_CSP


def security_headers(path: str, docs_path: str) -> list[tuple[bytes, bytes]]:
    return [*COMMON, (b"content-security-policy", csp_for(path, docs_path).encode())]


class SecurityHeaders:
    """Pure ASGI middleware adding `security_headers` to every HTTP response it sees start; a header
    the app set itself is left as the app set it."""

    def __init__(self, app: ASGIApp, docs_path: str) -> None:
        self.app = app
        self.docs_path = docs_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in security_headers(path, self.docs_path)
                         if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
