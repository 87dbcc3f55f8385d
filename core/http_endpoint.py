"""A stage's own read-only HTTP endpoint (`/metrics`, `/healthz` and the like) on a thread of its own:
routes are plain functions of the query string, so a stage only says what each path answers. The
collector's, the rules engine's and the bridge's endpoints are this.

A route returns `(status, body, content type)`. Access logs are off: a scraper every few seconds
would flood them, and the stage's metrics say what matters.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, bytes, str]
Route = Callable[[Mapping[str, list[str]]], Answer]

IDLE_WAKE_S = 5.0
"""How often an idle endpoint's thread wakes (socketserver's poll interval, 0.5 s by default): `stop`
wakes it at once with a connection of its own, so the interval only costs CPU, and at 0.5 s it was
a good part of an idle collector's (benchmarks/README.md, "A trickle gathered in the socket")."""


class HttpEndpoint:
    """Lifecycle: `start()` once, `stop()` once. Raises OSError at construction when it cannot listen."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route], name: str,
                 not_found: Answer | None = None) -> None:
        """`not_found`: the answer to any other path; None: a plain-text 404 listing the routes."""
        missing = not_found or (404, f"not found; try {', '.join(routes)}\n".encode(), "text/plain")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                route = routes.get(url.path)
                if route is None:
                    self._send(missing)
                else:
                    self._send(route(parse_qs(url.query)))

            def _send(self, answer: Answer) -> None:
                status, body, content_type = answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(IDLE_WAKE_S,), name=name,
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.ident is not None:
            stopping = threading.Thread(target=self._server.shutdown, name="http-endpoint-stop", daemon=True)
            stopping.start()
            address = self._server.server_address[:2]
            while stopping.is_alive():  # until the loop has seen the request to shut down
                with contextlib.suppress(OSError):
                    socket.create_connection(address, timeout=1).close()
                stopping.join(0.05)
        self._server.server_close()
