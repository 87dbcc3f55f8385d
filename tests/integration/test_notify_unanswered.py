"""A send whose answer never comes (the service took the request, the answer was lost on the way
back) against stand-ins that record the request and answer after the notifier's timeout
(notify_standins.py `hold`; stand-ins, since Telegram, ntfy and an SMS aggregator cannot run here).
The retry must let the recipient tell it from a new page: the same ntfy sequence id (the phone
replaces the first), the same SMS gateway Idempotency-Key, and for Telegram, which takes no key, a
first line saying it is sent again with the notification's id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest

from core.clock import FakeClock
from facmon.servers import free_port
from rules.notifiers.http import SentNoAnswer, send_request
from rules.notifiers.ntfy import NtfyNotifier
from rules.notifiers.sms_gateway import SmsGatewayNotifier
from rules.notifiers.telegram import TelegramApi, TelegramNotifier
from rules.notify import Notifier, NotifyError, load_template
from rules.store import AlertStore
from tests.integration.notify_standins import Hold, NtfyStandIn, Request, SmsAggregatorStandIn, TelegramStandIn
from tests.integration.test_notify_channels import outbox_payload

TIMEOUT_S = 0.3
HELD_S = 2.0
"""Longer than TIMEOUT_S: the stand-in's answer to a held request comes after the notifier gave up."""


def first_request_held() -> Hold:
    seen: list[Request] = []

    def hold(request: Request) -> float:
        seen.append(request)
        return HELD_S if len(seen) == 1 else 0.0
    return hold


class Closable(Protocol):
    def close(self) -> None: ...


@pytest.fixture
def store(tmp_path) -> Iterator[AlertStore]:
    s = AlertStore(tmp_path / "alerts.db", FakeClock())
    yield s
    s.close()


def test_a_request_never_sent_is_not_reported_as_maybe_delivered():
    with pytest.raises(NotifyError) as refused:
        send_request("POST", f"http://127.0.0.1:{free_port()}/hook", b"{}", {}, TIMEOUT_S)
    assert refused.value.retryable and not isinstance(refused.value, SentNoAnswer)


def unanswered_then_retried(store: AlertStore, server: Closable, notifier: Notifier, retries: int = 1) -> str:
    """Send one notification through `notifier` to a stand-in holding its first answer: the send
    raises SentNoAnswer; then the outbox's `retries`. Closes the stand-in; returns the notification id."""
    try:
        payload = outbox_payload(store, FakeClock(), notifier.name)
        with pytest.raises(SentNoAnswer):
            notifier.send(payload)
        for _ in range(retries):
            notifier.send(payload)
    finally:
        server.close()
    return payload["facmon"]["notification_id"]


def test_telegram_marks_the_resend_of_an_unanswered_message_as_a_repeat_with_its_id(store):
    server = TelegramStandIn(hold=first_request_held())
    notifier = TelegramNotifier("oncall:telegram0", TelegramApi(server.url, server.token, TIMEOUT_S), ("111",),
                                "en", {"park": ZoneInfo("Asia/Karachi")})
    nid = unanswered_then_retried(store, server, notifier, retries=2)  # the second retry: delivered, not sent
    first, again = (m["text"] for m in server.sent)
    assert len(server.sent) == 2, "Telegram takes no idempotency key: the stand-in, like it, keeps both"
    repeat = load_template("en")["repeat"].format(id=nid)
    assert again == f"{repeat}\n{first}"
    assert nid in again.splitlines()[0] and not first.startswith("🔁")


def test_ntfy_resends_with_the_same_sequence_id_so_the_phone_shows_one(store):
    server = NtfyStandIn(hold=first_request_held())
    nid = unanswered_then_retried(store, server, NtfyNotifier("oncall:ntfy0", server.url, "park-oncall",
                                                              timeout_s=TIMEOUT_S))
    assert [m["sequence_id"] for m in server.published] == [nid, nid]
    assert len(server.shown()) == 1


def test_sms_gateway_resends_with_the_same_idempotency_key_and_id(store):
    server = SmsAggregatorStandIn(hold=first_request_held())
    notifier = SmsGatewayNotifier("oncall:sms0", server.url + "/send", ("+923001234567",),
                                  body='{{"to": "{to}", "message": "{text}", "ref": "{id}"}}', timeout_s=TIMEOUT_S)
    nid = unanswered_then_retried(store, server, notifier)
    assert [body["ref"] for _, body in server.received] == [nid, nid]
    assert [r.headers.get("Idempotency-Key") for r in server.server.requests] == [nid, nid]
