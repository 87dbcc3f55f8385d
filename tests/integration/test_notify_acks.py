"""Acknowledging from the phone, as the running engine reads it (rules.workers.AckListeners): a press
of Telegram's Acknowledge button (a callback query from the Bot API stand-in) and an `ACK <code>`
SMS in the Gammu dummy modem's inbox each acknowledge their alert in the store, with who did it."""

from __future__ import annotations

from core.clock import FakeClock
from rules.alerts import Alert, AlertState, fingerprint
from rules.notifiers.gsm import GsmNotifier
from rules.notifiers.telegram import TelegramApi, TelegramNotifier
from rules.store import AlertStore
from rules.workers import AckListeners
from tests.integration.notify_standins import TelegramStandIn
from tests.integration.test_notify_gsm import NUMBER, dummy_modem, receive
from tests.support import poll_until


def _firing(store: AlertStore, device: str) -> str:
    labels = {"alertname": "GridOutage", "site": "park", "device": device, "severity": "critical"}
    fp = fingerprint({k: v for k, v in labels.items() if k != "severity"})
    store.save_alert(Alert(fp, "GridOutage", labels, {"summary": "Grid down"}, AlertState.FIRING, 0.0, 0.0))
    return fp


def test_a_button_press_and_an_sms_reply_acknowledge_while_the_engine_runs(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    by_button, by_sms = _firing(store, "inv-main"), _firing(store, "inv-lab")
    telegram = TelegramStandIn()
    telegram.updates.append({"update_id": 7, "callback_query": {
        "id": "cq-7", "from": {"id": 111, "is_bot": False, "username": "ayesha_oncall"}, "data": f"ack:{by_button}"}})
    modem = dummy_modem(tmp_path / "modem")
    receive(tmp_path / "modem", f"ACK {by_sms[:6]}")
    notifiers = {
        "oncall:telegram0": TelegramNotifier("oncall:telegram0", TelegramApi(telegram.url, telegram.token), ("111",)),
        "oncall:gsm1": GsmNotifier("oncall:gsm1", modem, (NUMBER,), read_replies=True),
    }
    listeners = AckListeners(store, notifiers, clock, modem_interval_s=0.2)
    listeners.start()
    try:
        poll_until(lambda: all(store.alert(fp).alert.acked_by for fp in (by_button, by_sms)), 10,
                   what="both acknowledgements")
    finally:
        listeners.stop()
        telegram.close()
    assert [(a.by, a.comment) for a in store.alert(by_button).acks] == [
        ("telegram:ayesha_oncall", "acknowledged from the phone")]
    assert [a.by for a in store.alert(by_sms).acks] == [f"sms:{NUMBER}"]
    assert telegram.answered[0] == {"callback_query_id": "cq-7", "text": "acknowledged GridOutage inv-main"}
    store.close()
