"""ntfy (https://docs.ntfy.sh/publish/): a JSON publish to the server's root URL, so Urdu titles
travel in the body (HTTP headers cannot carry them). Priority and tags follow the severity; the
click action opens the status page. Each message carries the notification's stable id as its
sequence id (`sequence_id`, ntfy 2.16 and its apps from January 2026): a retry of a publish whose
answer never came replaces the notification on the phone instead of adding a second one (an older
server ignores the field and shows both). ntfy's refusals are JSON `{"code": 40301, "http": 403, "error":
"forbidden", ...}`; 429 (`limit reached`) and 5xx are retried."""

from __future__ import annotations

import json
from collections.abc import Mapping

from rules.notifiers.http import HttpAnswer, retry_after_of, send_request
from rules.notify import NotifyError, Zones, highest_severity, notification_id, render_text

# ntfy's priorities: 5 urgent (long vibration, pops over do-not-disturb), 4 high, 3 default, 2 low.
PRIORITY = {"critical": 5, "warning": 4, "info": 3}
TAGS = {"critical": ["rotating_light"], "warning": ["warning"], "info": ["information_source"]}
RESOLVED_PRIORITY, RESOLVED_TAGS = 2, ["white_check_mark"]


def priority_and_tags(payload: Mapping) -> tuple[int, list[str]]:
    if payload.get("status") != "firing":
        return RESOLVED_PRIORITY, list(RESOLVED_TAGS)
    severity = highest_severity(payload)
    return PRIORITY.get(severity, 3), TAGS.get(severity, []) + ([severity] if severity else [])


class NtfyNotifier:
    def __init__(self, name: str, url: str, topic: str, token: str | None = None, language: str = "en",
                 zones: Zones | None = None, timeout_s: float = 10.0) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.topic = topic
        self.token = token
        self.language = language
        self.zones = zones or {}
        self.timeout_s = timeout_s

    def send(self, payload: Mapping) -> None:
        subject, body = render_text(payload, self.language, self.zones)
        priority, tags = priority_and_tags(payload)
        message = {"topic": self.topic, "title": subject, "message": body, "priority": priority, "tags": tags,
                   "click": payload.get("externalURL", "").rstrip("/") + "/status/"}
        headers = {"Content-Type": "application/json"}
        nid = notification_id(payload)
        if nid:
            message["sequence_id"] = nid
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        send_request("POST", self.url, json.dumps(message, ensure_ascii=False).encode(), headers, self.timeout_s,
                     describe=self._describe)

    def _describe(self, answer: HttpAnswer) -> NotifyError | None:
        try:
            error = json.loads(answer.body)
        except ValueError:
            return None
        text = f"{error.get('code', answer.status)} {error.get('error', '')}".strip()
        if answer.status in (401, 403):
            return NotifyError(f"ntfy {self.url} refused topic {self.topic!r} ({text}): set the receiver's "
                               "ntfy token_file to a token with write access to the topic", False)
        if answer.status == 429:
            return NotifyError(f"ntfy {self.url} is rate limiting ({text})", True, retry_after_of(answer.headers))
        return NotifyError(f"ntfy {self.url} answered {answer.status} ({text})", answer.status >= 500)
