"""Delivery across channels: a slow modem holds up no webhook (one worker per channel), failover
to SMS when the primary keeps failing or the site is offline, nothing sent twice when the internet
returns, and which channel delivered is recorded."""

from __future__ import annotations

import threading

from core.clock import FakeClock, SystemClock
from rules.notifiers.telegram import TelegramApi, TelegramNotifier
from rules.notify import Delivery, Failover, NotifyError, WebhookNotifier, payload_of
from rules.store import AlertStore
from rules.workers import DeliveryWorkers
from tests.integration.notify_standins import TelegramStandIn
from tests.integration.test_notify_channels import FP, ZONES, incident
from tests.integration.test_rules_notifiers import CaptureServer
from tests.support import poll_until


class SlowModem:
    """A GSM notifier whose modem takes as long as a bad one (up to `hold_s`); `release` ends it."""

    name = "oncall:gsm1"

    def __init__(self, hold_s: float = 10.0) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.hold_s = hold_s
        self.sent = 0

    def send(self, payload: object) -> None:
        self.started.set()
        self.release.wait(self.hold_s)
        self.sent += 1


class RecordingSms:
    name = "oncall:gsm1"

    def __init__(self) -> None:
        self.payloads: list[dict] = []

    def send(self, payload: dict) -> None:
        self.payloads.append(payload)


def test_a_modem_taking_10_s_does_not_delay_the_webhook(tmp_path):
    clock = SystemClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    hook = CaptureServer()
    modem = SlowModem()
    delivery = Delivery(store, {"oncall:webhook0": WebhookNotifier("oncall:webhook0", hook.url), "oncall:gsm1": modem})
    workers = DeliveryWorkers(delivery, clock, interval_s=0.05)
    workers.start()
    try:
        payload = payload_of(incident(FakeClock()), "http://facmon.test")
        store.enqueue_notification("g", "oncall:gsm1", [FP], payload, clock.now())
        workers.wake()
        poll_until(modem.started.is_set, timeout_s=5, what="the modem to start its 10 s send")
        store.enqueue_notification("g", "oncall:webhook0", [FP], payload, clock.now())
        workers.wake()
        poll_until(lambda: hook.bodies, timeout_s=5, what="the webhook while the modem is busy")
        assert modem.sent == 0 and not modem.release.is_set()  # the webhook went out while the modem held
        modem.release.set()
        poll_until(lambda: modem.sent == 1, timeout_s=5, what="the modem's SMS")
    finally:
        modem.release.set()
        workers.stop()
        hook.close()
        store.close()
    assert [r.status for r in AlertStore(tmp_path / "alerts.db", clock).notifications()] == ["sent", "sent"]


def _failover_setup(tmp_path, telegram: TelegramStandIn, offline: list[bool]):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    sms = RecordingSms()
    notifier = TelegramNotifier("oncall:telegram0", TelegramApi(telegram.url, telegram.token), ("111",), "en", ZONES)
    delivery = Delivery(store, {"oncall:telegram0": notifier, "oncall:gsm1": sms}, min_s=10, max_s=60,
                        failover={"oncall:telegram0": Failover(("oncall:gsm1",), 300.0)},
                        site_offline=lambda: offline[0])
    return clock, store, sms, delivery


def test_critical_notifications_fail_over_to_sms_and_are_not_sent_again_when_the_internet_returns(tmp_path):
    telegram = TelegramStandIn(fail_status=502)  # the site's uplinks are cut: Telegram is unreachable
    clock, store, sms, delivery = _failover_setup(tmp_path, telegram, [False])
    try:
        store.enqueue_notification("g", "oncall:telegram0", [FP], payload_of(incident(clock), "http://x"),
                                   clock.now())
        store.enqueue_notification("g", "oncall:telegram0", [FP],
                                   payload_of(incident(clock, severity="warning"), "http://x"), clock.now())
        for _ in range(8):  # retries within the first 300 s stay on Telegram
            delivery.deliver_due(clock.now())
            clock.advance(40)
        assert sms.payloads == []
        clock.advance(20)
        delivery.deliver_due(clock.now())  # > 300 s failing: the critical one fails over
        delivery.deliver_due(clock.now())  # and the SMS worker sends it
        assert len(sms.payloads) == 1
        critical, warning, via_sms = store.notifications()
        assert critical.status == "failed_over" and "failed over to oncall:gsm1 (still failing)" in critical.last_error
        assert warning.status == "pending"  # a warning waits for Telegram
        assert via_sms.receiver == "oncall:gsm1" and via_sms.status == "sent"
        assert store.delivered_via(critical.id) == "oncall:gsm1"

        telegram.fail_status = None  # the internet returns
        clock.advance(120)
        delivery.deliver_due(clock.now())
        assert [m["text"].splitlines()[2] for m in telegram.sent] == [
            "- [warning] GridOutage: Grid down at park (inv-main) (since 05:00 PKT)"]  # not the critical again
        assert store.delivered_via(warning.id) == "oncall:telegram0"
    finally:
        telegram.close()
        store.close()


def test_while_the_site_is_offline_a_critical_notification_fails_over_at_the_first_failure(tmp_path):
    telegram = TelegramStandIn(fail_status=502)
    clock, store, sms, delivery = _failover_setup(tmp_path, telegram, [True])
    try:
        store.enqueue_notification("g", "oncall:telegram0", [FP], payload_of(incident(clock), "http://x"),
                                   clock.now())
        delivery.deliver_due(clock.now())
        delivery.deliver_due(clock.now())
        assert len(sms.payloads) == 1 and sms.payloads[0]["facmon"]["failover_of"] == 1
        assert delivery.counts.failed == {"oncall:telegram0": 1} and delivery.counts.sent == {"oncall:gsm1": 1}
    finally:
        telegram.close()
        store.close()


def test_a_notifier_error_that_is_not_retryable_fails_over_at_once(tmp_path):
    class Refusing:
        name = "oncall:telegram0"

        def send(self, payload: object) -> None:
            raise NotifyError("Telegram refused the bot token (401 Unauthorized)", False)

    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    sms = RecordingSms()
    delivery = Delivery(store, {"oncall:telegram0": Refusing(), "oncall:gsm1": sms},
                        failover={"oncall:telegram0": Failover(("oncall:gsm1",), 300.0)})
    store.enqueue_notification("g", "oncall:telegram0", [FP], payload_of(incident(clock), "http://x"), clock.now())
    delivery.deliver_due(clock.now())
    delivery.deliver_due(clock.now())
    assert len(sms.payloads) == 1
    store.close()


def test_a_long_back_off_does_not_delay_the_failover(tmp_path):
    telegram = TelegramStandIn(fail_status=502)
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    sms = RecordingSms()
    notifier = TelegramNotifier("oncall:telegram0", TelegramApi(telegram.url, telegram.token), ("111",))
    delivery = Delivery(store, {"oncall:telegram0": notifier, "oncall:gsm1": sms}, min_s=200, max_s=3600,
                        failover={"oncall:telegram0": Failover(("oncall:gsm1",), 300.0)})
    try:
        created = clock.now()
        store.enqueue_notification("g", "oncall:telegram0", [FP], payload_of(incident(clock), "http://x"), created)
        delivery.deliver_due(clock.now())
        assert store.notifications()[0].next_attempt_at == created + 200
        clock.advance(200)
        delivery.deliver_due(clock.now())  # back-off would say +400 s; the failover is due at +300 s
        assert store.notifications()[0].next_attempt_at == created + 300
        clock.advance(100)
        delivery.deliver_due(clock.now())
        delivery.deliver_due(clock.now())
        assert len(sms.payloads) == 1 and store.notifications()[0].status == "failed_over"
    finally:
        telegram.close()
        store.close()
