"""The watchdog's HTTP side: POST /heartbeat (signed, see core.heartbeat), GET /healthz, GET /sites.
A plain threading HTTP server: a handful of sites beating once a minute needs nothing more."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.heartbeat import MAX_BODY_BYTES, SIGNATURE_HEADER

log = logging.getLogger("facmon.watchdog.http")

HeartbeatHandler = Callable[[bytes, str | None], tuple[int, str]]
"""(body, signature header) → (HTTP status, message)."""


class WatchdogServer:
    def __init__(self, host: str, port: int, on_heartbeat: HeartbeatHandler,
                 sites: Callable[[], dict[str, dict[str, object]]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/heartbeat":
                    self._answer(404, {"error": "POST /heartbeat is the only write"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(413, {"error": f"heartbeat over {MAX_BODY_BYTES} bytes"})
                    return
                status, message = on_heartbeat(self.rfile.read(length), self.headers.get(SIGNATURE_HEADER))
                self._answer(status, {"status": "ok"} if status == 200 else {"error": message})

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._answer(200, {"status": "ok"})
                elif self.path == "/sites":
                    self._answer(200, sites())
                else:
                    self._answer(404, {"error": "GET /healthz or /sites"})

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass  # every refusal is logged by the handler, once

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="watchdog-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
