"""Request bodies bounded before any other work: routing, key checks and body parsing all come after.

A request declaring a `Content-Length` over the limit is answered 413 at once; its body is never
read (the server stops reading the socket, and closes the connection after the answer). A body sent
without a length (chunked) is counted as it arrives: past the limit the request is answered 413, the
application is told the client left, and whatever it tries to send after that is dropped.

FastAPI's own `max_body_size` is not used: it lets the route run until the body is read and
answers in plain text, not as a problem document.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_MEDIA_TYPE, problem_body


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number, or -1 when it is not one (uvicorn refuses those itself)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


class BodyLimit:
    """Pure ASGI middleware: at most `max_bytes` of request body reach the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"the request body is {declared} bytes; at most {self.max_bytes} are accepted")
            return
        received = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send, f"the request body is over {self.max_bytes} bytes, the most "
                                                 "accepted; it was not read further")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # our 413 went out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send: Send, detail: str) -> None:
        body = problem_body(413, detail)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
