"""An SMS aggregator's HTTP API, built from configured templates (local aggregators all differ).

`url`, `body` and each header are templates with `{to}`, `{text}` and `{id}`; `{text}` is escaped
for where it lands: URL-encoded in the URL and in a form body, JSON-escaped in a JSON body.
Templates are checked when the configuration loads (core.settings.rules.SmsGatewaySettings); one
request per number; any 2xx is delivered; 429 and 5xx are retried (honouring `Retry-After`), other
4xx are not (the message names the status and the gateway's answer)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence

from rules.notifiers.http import send_request
from rules.notify import Zones, notification_id, render_sms


def _json_escaped(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def build_request(url: str, body: str, body_format: str, headers: Mapping[str, str], to: str, text: str,
                  nid: str) -> tuple[str, bytes, dict[str, str]]:
    """(url, body bytes, headers) of one gateway request; pure."""
    in_url = {"to": urllib.parse.quote(to, safe=""), "text": urllib.parse.quote(text, safe=""),
              "id": urllib.parse.quote(nid, safe="")}
    escape = _json_escaped if body_format == "json" else (lambda v: urllib.parse.quote_plus(v))
    in_body = {"to": escape(to), "text": escape(text), "id": escape(nid)}
    content_type = "application/json" if body_format == "json" else "application/x-www-form-urlencoded"
    plain = {"to": to, "text": text, "id": nid}
    return (url.format(**in_url), body.format(**in_body).encode(),
            {"Content-Type": content_type, **{k: v.format(**plain) for k, v in headers.items()}})


class SmsGatewayNotifier:
    def __init__(self, name: str, url: str, numbers: Sequence[str], body: str = "", body_format: str = "json",
                 method: str = "POST", headers: Mapping[str, str] | None = None, api_key: str | None = None,
                 language: str = "en", zones: Zones | None = None, timeout_s: float = 10.0) -> None:
        self.name = name
        self.url, self.body, self.body_format, self.method = url, body, body_format, method
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = "Bearer " + api_key.replace("{", "{{").replace("}", "}}")
        self.numbers = tuple(numbers)
        self.language = language
        self.zones = zones or {}
        self.timeout_s = timeout_s
        self._delivered: set[tuple[str, str]] = set()

    def send(self, payload: Mapping) -> None:
        text = render_sms(payload, self.language, self.zones)
        nid = notification_id(payload)
        for number in self.numbers:
            if (nid, number) in self._delivered:
                continue
            url, body, headers = build_request(self.url, self.body, self.body_format, self.headers, number, text, nid)
            if nid:
                headers.setdefault("Idempotency-Key", nid)
            shown = url.split("?", 1)[0]  # the query may carry the text or a key
            send_request(self.method, url, body if self.method == "POST" else None, headers, self.timeout_s, shown)
            if nid:
                self._delivered.add((nid, number))
