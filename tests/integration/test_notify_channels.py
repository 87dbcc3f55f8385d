"""The phone channels against local stand-ins that answer as the real services document (see
notify_standins.py: Telegram's Bot API, ntfy, an SMS aggregator), errors included, through the
same outbox (`Delivery`) the rules engine drains."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from core.clock import FakeClock
from rules.alerts import Alert, AlertState, fingerprint
from rules.notifiers.ntfy import NtfyNotifier
from rules.notifiers.sms_gateway import SmsGatewayNotifier
from rules.notifiers.telegram import TelegramAcks, TelegramApi, TelegramNotifier
from rules.notify import Delivery, NotifyError, payload_of, with_notification_id
from rules.route import Notification
from rules.store import AlertStore
from tests.integration.notify_standins import NtfyStandIn, SmsAggregatorStandIn, TelegramStandIn

ZONES = {"park": ZoneInfo("Asia/Karachi")}
IDENTITY = {"alertname": "GridOutage", "site": "park", "device": "inv-main"}
FP = fingerprint(IDENTITY)


def incident(clock: FakeClock, severity: str = "critical", status: str = "firing", muted: int = 0) -> Notification:
    """A grid outage that fired at 00:00 UTC (05:00 PKT), with `muted` silent devices behind it."""
    state = AlertState.FIRING if status == "firing" else AlertState.RESOLVED
    alert = Alert(FP, "GridOutage", {**IDENTITY, "severity": severity},
                  {"summary": "Grid down at park (inv-main)", "summary_ur": "park پر بجلی بند (inv-main)"}, state,
                  active_since=clock.now(), fired_at=clock.now(),
                  resolved_at=clock.now() + 60 if state is AlertState.RESOLVED else None)
    silent = tuple(Alert(fingerprint({"alertname": "DeviceSilent", "device": f"sensor-{i}"}), "DeviceSilent",
                         {"alertname": "DeviceSilent", "site": "park", "device": f"sensor-{i}", "severity": "warning"},
                         {}, AlertState.FIRING, fired_at=clock.now(), muted_by=(f"inhibited:{FP}",))
                   for i in range(muted))
    return Notification("oncall", 'oncall/{"site":"park"}', {"site": "park"}, status, (alert,), silent, "new")


def outbox_payload(store: AlertStore, clock: FakeClock, receiver: str, **kwargs: object) -> dict:
    """Enqueue the incident for `receiver` and return its payload as Delivery sends it (with its id)."""
    payload = payload_of(incident(clock, **kwargs), "http://facmon.test")  # type: ignore[arg-type]
    row = store.enqueue_notification('oncall/{"site":"park"}', receiver, [FP], payload, clock.now())
    return with_notification_id(next(r for r in store.notifications() if r.id == row))


@pytest.fixture
def telegram() -> Iterator[TelegramStandIn]:
    server = TelegramStandIn()
    yield server
    server.close()


@pytest.fixture
def ntfy() -> Iterator[NtfyStandIn]:
    server = NtfyStandIn(token="tk_secret")
    yield server
    server.close()


@pytest.fixture
def aggregator() -> Iterator[SmsAggregatorStandIn]:
    server = SmsAggregatorStandIn()
    yield server
    server.close()


@pytest.fixture
def store(tmp_path) -> Iterator[AlertStore]:
    s = AlertStore(tmp_path / "alerts.db", FakeClock())
    yield s
    s.close()


def _telegram(server: TelegramStandIn, chats: tuple[str, ...] = ("111", "-1002003004005"),
              token: str | None = None) -> TelegramNotifier:
    return TelegramNotifier("oncall:telegram0", TelegramApi(server.url, token or server.token), chats, "en", ZONES)


def test_telegram_sends_to_every_chat_in_site_time_with_an_acknowledge_button(telegram, store):
    clock = FakeClock()
    _telegram(telegram).send(outbox_payload(store, clock, "oncall:telegram0", muted=13))
    assert [m["chat_id"] for m in telegram.sent] == ["111", "-1002003004005"]
    text = telegram.sent[0]["text"]
    assert "[critical] GridOutage: Grid down at park (inv-main) (since 05:00 PKT)" in text
    # Thirteen silent sensors behind the outage are one line, not thirteen.
    assert "- DeviceSilent sensor-0, sensor-1, sensor-2 +10 (inhibited)" in text
    assert text.count("DeviceSilent") == 1
    assert "Status page: http://facmon.test/status/" in text
    assert telegram.sent[0]["reply_markup"] == {"inline_keyboard": [[{
        "text": "✅ Acknowledge GridOutage inv-main", "callback_data": f"ack:{FP}"}]]}


def test_telegram_refusals_name_the_fix_and_only_429_is_retried_after_its_retry_after(telegram, store):
    clock = FakeClock()
    payload = outbox_payload(store, clock, "oncall:telegram0")
    with pytest.raises(NotifyError) as wrong_token:
        _telegram(telegram, token="123456:WRONG").send(payload)
    assert not wrong_token.value.retryable
    assert "401 Unauthorized" in str(wrong_token.value) and "bot_token_file" in str(wrong_token.value)
    assert "WRONG" not in str(wrong_token.value)  # the token never shows in a message or log
    with pytest.raises(NotifyError) as unknown_chat:
        _telegram(telegram, chats=("999",)).send(payload)
    assert not unknown_chat.value.retryable
    assert "does not know chat 999 (400 Bad Request: chat not found)" in str(unknown_chat.value)
    telegram.retry_after_s = 7
    with pytest.raises(NotifyError) as limited:
        _telegram(telegram).send(payload)
    assert limited.value.retryable and limited.value.retry_after_s == 7.0


def test_the_outbox_waits_telegrams_retry_after_and_a_chat_that_got_it_is_not_sent_it_again(telegram, store):
    clock = FakeClock()
    outbox_payload(store, clock, "oncall:telegram0")
    notifier = _telegram(telegram, chats=("111", "-1002003004005"))
    telegram.chats = {"111"}  # the group is unknown at first: the person's chat gets it, the group fails
    delivery = Delivery(store, {"oncall:telegram0": notifier}, min_s=1.0)
    assert delivery.deliver_due(clock.now()) == 0
    row = store.notifications()[0]
    assert (row.status, row.attempts) == ("failed", 1)  # chat not found is not retried...
    assert "chat -1002003004005" in row.last_error
    assert [m["chat_id"] for m in telegram.sent] == ["111"]

    outbox_payload(store, clock, "oncall:telegram0")
    telegram.chats = {"111", "-1002003004005"}
    telegram.retry_after_s = 30
    delivery.deliver_due(clock.now())
    second = store.notifications()[1]
    assert second.status == "pending" and second.next_attempt_at == clock.now() + 30  # retry_after, not 1 s
    telegram.retry_after_s = None
    clock.advance(29)
    assert delivery.deliver_due(clock.now()) == 0  # not before Telegram said
    clock.advance(1)
    assert delivery.deliver_due(clock.now()) == 1
    assert store.notifications()[1].status == "sent"


def test_the_acknowledge_button_acknowledges_through_a_callback_query(telegram):
    telegram.updates.append({"update_id": 41, "callback_query": {
        "id": "cq-1", "from": {"id": 111, "is_bot": False, "first_name": "Ayesha", "username": "ayesha_oncall"},
        "chat_instance": "1", "data": f"ack:{FP}"}})
    acked: list[tuple[str, str]] = []

    def acknowledge(fp: str, by: str) -> str:
        acked.append((fp, by))
        return "acknowledged"

    acks = TelegramAcks(TelegramApi(telegram.url, telegram.token), acknowledge, poll_timeout_s=0)
    assert acks.poll() == 1
    assert acked == [(FP, "telegram:ayesha_oncall")]
    assert telegram.answered == [{"callback_query_id": "cq-1", "text": "acknowledged"}]
    assert acks.poll() == 0  # the offset moved past the handled update


def test_ntfy_priority_and_tags_follow_the_severity(ntfy, store):
    clock = FakeClock()
    notifier = NtfyNotifier("oncall:ntfy0", ntfy.url, "park-oncall", "tk_secret", "ur", ZONES)
    notifier.send(outbox_payload(store, clock, "oncall:ntfy0"))
    notifier.send(outbox_payload(store, clock, "oncall:ntfy0", severity="warning"))
    notifier.send(outbox_payload(store, clock, "oncall:ntfy0", status="resolved"))
    assert [(m["priority"], m["tags"]) for m in ntfy.published] == [
        (5, ["rotating_light", "critical"]), (4, ["warning", "warning"]), (2, ["white_check_mark"])]
    first = ntfy.published[0]
    assert first["topic"] == "park-oncall" and first["click"] == "http://facmon.test/status/"
    assert "park پر بجلی بند (inv-main) (05:00 PKT سے)" in first["message"]  # Urdu in the body, not a header


def test_ntfy_refusals(ntfy, store):
    clock = FakeClock()
    payload = outbox_payload(store, clock, "oncall:ntfy0")
    with pytest.raises(NotifyError) as forbidden:
        NtfyNotifier("oncall:ntfy0", ntfy.url, "park-oncall", None).send(payload)
    assert not forbidden.value.retryable and "40301 forbidden" in str(forbidden.value)
    assert "token_file" in str(forbidden.value)
    ntfy.limited = True
    with pytest.raises(NotifyError) as limited:
        NtfyNotifier("oncall:ntfy0", ntfy.url, "park-oncall", "tk_secret").send(payload)
    assert limited.value.retryable and limited.value.retry_after_s == 9.0


def test_sms_gateway_json_and_form_templates_carry_urdu_quotes_and_newlines(aggregator, store):
    clock = FakeClock()
    payload = outbox_payload(store, clock, "oncall:sms_gateway0")
    SmsGatewayNotifier("oncall:sms_gateway0", aggregator.url + "/api/send?key=k1", ("+923001234567",),
                       '{{"recipient": "{to}", "message": "{text}", "ref": "{id}"}}', "json", language="ur",
                       zones=ZONES).send(payload)
    SmsGatewayNotifier("oncall:sms_gateway1", aggregator.url + "/form", ("+923001234567", "+923331234567"),
                       "to={to}&msg={text}", "form", language="en", zones=ZONES).send(payload)
    (path, first), *form = aggregator.received
    assert path == "/api/send?key=k1"
    assert first["recipient"] == "+923001234567" and first["ref"] == payload["facmon"]["notification_id"]
    assert first["message"].startswith("جاری park: 1 الرٹ\n")
    assert "critical GridOutage inv-main 05:00 PKT سے" in first["message"]
    assert [body["to"] for _, body in form] == ["+923001234567", "+923331234567"]
    assert form[0][1]["msg"].splitlines()[:2] == ["FIRING park: 1 alert(s)",
                                                  "critical GridOutage inv-main since 05:00 PKT"]


def test_sms_gateway_errors(aggregator, store):
    clock = FakeClock()
    payload = outbox_payload(store, clock, "oncall:sms_gateway0")
    notifier = SmsGatewayNotifier("oncall:sms_gateway0", aggregator.url + "/send?text={text}", ("+923001234567",),
                                  method="GET")
    aggregator.fail_with = 503
    with pytest.raises(NotifyError) as unavailable:
        notifier.send(payload)
    assert unavailable.value.retryable
    assert "/send answered 503" in str(unavailable.value) and "GridOutage" not in str(unavailable.value)
    aggregator.fail_with = 400
    with pytest.raises(NotifyError) as refused:
        notifier.send(payload)
    assert not refused.value.retryable and "gateway says no" in str(refused.value)
