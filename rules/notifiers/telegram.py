"""Telegram Bot API: `sendMessage` to each configured chat, with an inline *Acknowledge* button per
firing alert, and the button presses (callback queries) read back as acknowledgements.

Errors as the Bot API documents them (https://core.telegram.org/bots/api#making-requests): every
answer is `{"ok": false, "error_code": N, "description": "..."}`; 429 carries
`parameters.retry_after` (seconds), which the outbox honours; 401 is a wrong bot token, 400
"chat not found" an unknown chat id, 403 a chat that blocked the bot — none of those is retried.
The token is part of the URL, so no message ever shows the URL: they name the chat instead.

The Bot API takes no idempotency key and cannot list the messages a bot sent, so a `sendMessage`
whose answer never came (SentNoAnswer) may have been delivered, and its retry can be a second copy
that nothing here can take back. The retry is marked: its first line says it is sent again and
names the notification's id, so the person reads it as the same page."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rules.notifiers.http import HttpAnswer, SentNoAnswer, send_request
from rules.notify import NotifyError, Zones, load_template, notification_id, render_text

log = logging.getLogger("facmon.rules.telegram")
MAX_TEXT = 4096  # sendMessage's limit, in characters
MAX_BUTTONS = 5
ACK_PREFIX = "ack:"


def _describe(chat: str) -> Callable[[HttpAnswer], NotifyError | None]:
    def describe(answer: HttpAnswer) -> NotifyError | None:
        try:
            error = json.loads(answer.body)
        except ValueError:
            return None
        text = str(error.get("description", ""))
        code = int(error.get("error_code", answer.status))
        if code == 429:
            retry_after = float(error.get("parameters", {}).get("retry_after", 0)) or None
            return NotifyError(f"Telegram is rate limiting the bot (429 {text}); retrying after {retry_after} s",
                               True, retry_after)
        if code == 401:
            return NotifyError(f"Telegram refused the bot token (401 {text}): set the receiver's telegram "
                               "bot_token_file to the token BotFather gave", False)
        if code == 400 and "chat not found" in text.lower():
            return NotifyError(f"Telegram does not know chat {chat} (400 {text}): the person must open the bot "
                               "and press Start, or fix telegram.chat_ids", False)
        if code == 403:
            return NotifyError(f"Telegram will not deliver to chat {chat} (403 {text}): the chat blocked the bot "
                               "or removed it; add it again or fix telegram.chat_ids", False)
        return NotifyError(f"Telegram answered {code} for chat {chat}: {text}", code >= 500 or code == 429)
    return describe


@dataclass(frozen=True, slots=True)
class TelegramApi:
    """The Bot API of one bot: `call(method, body)` → the answer's `result`."""

    api_url: str
    token: str
    timeout_s: float = 10.0

    def call(self, method: str, body: Mapping, chat: str = "-", timeout_s: float | None = None) -> object:
        url = f"{self.api_url.rstrip('/')}/bot{self.token}/{method}"
        answer = send_request("POST", url, json.dumps(body, ensure_ascii=False).encode(),
                              {"Content-Type": "application/json"}, timeout_s or self.timeout_s,
                              shown_url=f"{self.api_url.rstrip('/')}/bot<token>/{method}", describe=_describe(chat))
        try:
            return json.loads(answer.body).get("result")
        except ValueError:
            raise NotifyError(f"Telegram's {method} answered something that is not JSON", True) from None


def ack_buttons(payload: Mapping) -> list[list[dict[str, str]]]:
    """One *Acknowledge* button per firing alert (at most MAX_BUTTONS); callback_data is
    `ack:<fingerprint>`, well inside Telegram's 64 bytes."""
    firing = [a for a in payload.get("alerts", []) if a.get("status") == "firing" and a.get("fingerprint")]
    return [[{"text": f"✅ Acknowledge {a['labels'].get('alertname', '')} {a['labels'].get('device', '')}".strip(),
              "callback_data": ACK_PREFIX + a["fingerprint"]}] for a in firing[:MAX_BUTTONS]]


class TelegramNotifier:
    """Sends the rendered message to every chat in `chat_ids`. A chat that already has this
    notification (a retry after another chat failed) is not sent it again; a chat whose last send of
    it got no answer is sent it again with the `repeat` line of the language's template on top."""

    def __init__(self, name: str, api: TelegramApi, chat_ids: Sequence[str], language: str = "en",
                 zones: Zones | None = None, acknowledge_button: bool = True) -> None:
        self.name = name
        self.api = api
        self.chat_ids = tuple(chat_ids)
        self.language = language
        self.zones = zones or {}
        self.acknowledge_button = acknowledge_button
        self._delivered: set[tuple[str, str]] = set()
        self._unanswered: set[tuple[str, str]] = set()

    def send(self, payload: Mapping) -> None:
        subject, body = render_text(payload, self.language, self.zones)
        text = f"{subject}\n{body}"
        message: dict[str, object] = {"text": text[:MAX_TEXT], "disable_web_page_preview": True}
        buttons = ack_buttons(payload) if self.acknowledge_button else []
        if buttons:
            message["reply_markup"] = {"inline_keyboard": buttons}
        nid = notification_id(payload)
        for chat in self.chat_ids:
            if (nid, chat) in self._delivered:
                continue
            body = {**message, "chat_id": chat}
            if (nid, chat) in self._unanswered:
                repeat = load_template(self.language)["repeat"].format(id=nid)
                body["text"] = f"{repeat}\n{text}"[:MAX_TEXT]
            try:
                self.api.call("sendMessage", body, chat)
            except SentNoAnswer:
                if nid:
                    self._unanswered.add((nid, chat))
                raise
            if nid:
                self._delivered.add((nid, chat))
                self._unanswered.discard((nid, chat))


class TelegramAcks:
    """Reads the bot's button presses (`getUpdates`, callback queries only) and hands each
    `ack:<fingerprint>` to `acknowledge(fingerprint, by)`; answers the press so the phone stops
    spinning and says what happened. `poll()` is one long-poll round; returns how many it handled."""

    def __init__(self, api: TelegramApi, acknowledge: Callable[[str, str], str], poll_timeout_s: int = 20) -> None:
        self._api = api
        self._acknowledge = acknowledge
        self._offset = 0
        self._poll_timeout_s = poll_timeout_s

    def poll(self) -> int:
        updates = self._api.call("getUpdates", {"offset": self._offset, "timeout": self._poll_timeout_s,
                                                "allowed_updates": ["callback_query"]},
                                 timeout_s=self._poll_timeout_s + 10)
        handled = 0
        for update in updates if isinstance(updates, list) else []:
            self._offset = max(self._offset, int(update.get("update_id", 0)) + 1)
            query = update.get("callback_query")
            if not query or not str(query.get("data", "")).startswith(ACK_PREFIX):
                continue
            sender = query.get("from", {})
            by = f"telegram:{sender.get('username') or sender.get('id', '?')}"
            answer = self._acknowledge(str(query["data"])[len(ACK_PREFIX):], by)
            self._api.call("answerCallbackQuery", {"callback_query_id": query.get("id", ""), "text": answer[:200]})
            handled += 1
        return handled
