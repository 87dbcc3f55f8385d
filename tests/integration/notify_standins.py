"""Local stand-ins for the services that cannot run here (Telegram's servers, ntfy.sh, an SMS
aggregator). Each answers as its real service documents, error answers included:

- Telegram Bot API (https://core.telegram.org/bots/api#making-requests): `{"ok": true, "result": ...}`;
  errors `{"ok": false, "error_code": N, "description": "..."}`, 401 "Unauthorized" for a wrong
  token, 400 "Bad Request: chat not found", 429 "Too Many Requests: retry after N" with
  `parameters.retry_after`.
- ntfy (https://docs.ntfy.sh/publish/): JSON publish to the root URL answers the message as JSON;
  errors `{"code": 40301, "http": 403, "error": "forbidden", ...}`, 429 code 42901.
- an SMS aggregator: records the request; answers `fail_with` when set.

Each can also take a request and answer it late (`hold`: seconds to wait before answering, per
request), as a service does whose answer is lost on a bad uplink: the request is accepted (recorded)
and the sender's timeout expires first.

They are test scaffolding (never imported by the product) and are stopped by their fixture."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.clock import SystemClock

_CLOCK = SystemClock()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=_CLOCK.monotonic)
    """When the stand-in read it (monotonic s; benchmarks/notify.py measures delivery with it)."""

    def json(self) -> dict:
        return json.loads(self.body)


Hold = Callable[[Request], float]
"""Seconds to wait before answering this request (after it is recorded); 0 answers at once."""


class StandIn:
    """A loopback HTTP server calling `answer(request) -> (status, json body, headers)`, each answer
    held for `hold(request)` seconds when `hold` is given."""

    def __init__(self, answer: Callable[[Request], tuple[int, object, dict[str, str]]],
                 hold: Hold | None = None) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                request = Request(self.command, self.path, dict(self.headers), self.rfile.read(length))
                with outer._lock:
                    outer.requests.append(request)
                status, body, headers = answer(request)
                if hold is not None:
                    outer._closing.wait(hold(request))  # the answer the sender's timeout gives up on
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a held answer: the sender timed out and closed the connection

            do_POST = do_GET = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class TelegramStandIn:
    """The Bot API of one bot (`token`) that knows the chats in `chats`."""

    token: str = "123456:TEST-token"
    chats: set[str] = field(default_factory=lambda: {"111", "-1002003004005"})
    retry_after_s: int | None = None
    """When set, sendMessage answers 429 with this retry_after (until cleared)."""
    fail_status: int | None = None
    """When set, every call answers this status (e.g. 502, as when the site's uplink is cut)."""
    updates: list[dict] = field(default_factory=list)
    sent: list[dict] = field(default_factory=list)
    answered: list[dict] = field(default_factory=list)
    hold: Hold | None = None

    def __post_init__(self) -> None:
        self.server = StandIn(self._answer, self.hold)
        self.url = self.server.url

    def _answer(self, request: Request) -> tuple[int, object, dict[str, str]]:
        _, bot, method = request.path.split("/", 2)
        if self.fail_status is not None:
            return self.fail_status, {"ok": False, "error_code": self.fail_status, "description": "Bad Gateway"}, {}
        if bot != f"bot{self.token}":
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {}
        body = request.json()
        if method == "sendMessage":
            if self.retry_after_s is not None:
                return 429, {"ok": False, "error_code": 429,
                             "description": f"Too Many Requests: retry after {self.retry_after_s}",
                             "parameters": {"retry_after": self.retry_after_s}}, {}
            if str(body.get("chat_id")) not in self.chats:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, {}
            self.sent.append(body)
            return 200, {"ok": True, "result": {"message_id": len(self.sent), "date": 0, "text": body["text"],
                                                "chat": {"id": int(body["chat_id"]), "type": "private"}}}, {}
        if method == "getUpdates":
            offset = int(body.get("offset", 0))
            return 200, {"ok": True, "result": [u for u in self.updates if u["update_id"] >= offset]}, {}
        if method == "answerCallbackQuery":
            self.answered.append(body)
            return 200, {"ok": True, "result": True}, {}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}

    def close(self) -> None:
        self.server.close()


@dataclass
class NtfyStandIn:
    """An ntfy server; `token` protects every topic when set; `limited` answers 429."""

    token: str | None = None
    limited: bool = False
    published: list[dict] = field(default_factory=list)
    hold: Hold | None = None

    def __post_init__(self) -> None:
        self.server = StandIn(self._answer, self.hold)
        self.url = self.server.url

    def _answer(self, request: Request) -> tuple[int, object, dict[str, str]]:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return 403, {"code": 40301, "http": 403, "error": "forbidden",
                         "link": "https://ntfy.sh/docs/publish/#authentication"}, {}
        if self.limited:
            return 429, {"code": 42901, "http": 429, "error": "limit reached: too many requests"}, {"Retry-After": "9"}
        message = request.json()
        self.published.append(message)
        return 200, {"id": f"m{len(self.published)}", "time": 0, "event": "message", **message}, {}

    def shown(self) -> list[dict]:
        """What a subscribed phone shows, as ntfy documents its apps (server 2.16, Android 1.22, web):
        a message with the `sequence_id` of an earlier one replaces it; one without is a new notification."""
        by_sequence: dict[str, dict] = {}
        for n, message in enumerate(self.published):
            by_sequence[str(message.get("sequence_id") or f"#{n}")] = message
        return list(by_sequence.values())

    def close(self) -> None:
        self.server.close()


@dataclass
class SmsAggregatorStandIn:
    """An SMS aggregator: records each request (decoded form or JSON), answers `fail_with` if set."""

    fail_with: int | None = None
    received: list[tuple[str, dict]] = field(default_factory=list)
    hold: Hold | None = None

    def __post_init__(self) -> None:
        self.server = StandIn(self._answer, self.hold)
        self.url = self.server.url

    def _answer(self, request: Request) -> tuple[int, object, dict[str, str]]:
        if self.fail_with is not None:
            return self.fail_with, {"status": "error", "message": "gateway says no"}, {}
        if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        else:
            body = request.json() if request.body else {}
        self.received.append((request.path, body))
        return 200, {"status": "queued", "id": len(self.received)}, {}

    def close(self) -> None:
        self.server.close()
