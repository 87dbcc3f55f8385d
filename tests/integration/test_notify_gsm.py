"""SMS through Gammu's real library against its `dummy` connection (a modem kept in a folder: the
inbox holds files, sending goes through the library's encoder and state machine), and the modem's
failure modes: absent or unplugged, no SIM, no network. Nothing is lost: the outbox keeps the row."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gammu
import pytest

from core.clock import FakeClock
from rules.notifiers.acks import acknowledge_code
from rules.notifiers.gsm import GammuModem, GsmNotifier, read_ack_replies
from rules.notifiers.sms_text import fit
from rules.notify import Delivery, payload_of
from rules.store import AlertStore
from tests.integration.test_notify_channels import FP, ZONES, incident

NUMBER = "+923001234567"


def dummy_modem(folder: Path, factory: Any = None) -> GammuModem:
    folder.mkdir(exist_ok=True)
    return GammuModem(str(folder), connection="none", model="dummy", state_machine_factory=factory)


class RecordingMachine:
    """Gammu's real dummy state machine, recording what SendSMS was given (the dummy phone itself
    keeps no copy of sent messages); `fail` raises a real Gammu error on sending, `network` changes
    what GetNetworkInfo reports."""

    def __init__(self, fail: type[Exception] | None = None, network: str | None = None) -> None:
        self._machine = gammu.StateMachine()
        self.sent: list[dict] = []
        self.fail = fail
        self.network = network

    def __getattr__(self, name: str) -> Any:
        return getattr(self._machine, name)

    def GetNetworkInfo(self) -> dict:
        info = self._machine.GetNetworkInfo()
        return {**info, "State": self.network} if self.network else info

    def SendSMS(self, message: dict) -> int:
        if self.fail is not None:
            raise self.fail({"Text": "simulated", "Where": "SendSMS", "Code": 0})
        self.sent.append(message)
        return self._machine.SendSMS(message)


def test_an_urdu_incident_goes_out_as_ucs2_parts_within_max_parts(tmp_path):
    clock = FakeClock()
    machine = RecordingMachine()
    notifier = GsmNotifier("oncall:gsm0", dummy_modem(tmp_path / "modem", lambda: machine), (NUMBER,),
                           max_parts=2, language="ur", zones=ZONES)
    payload = payload_of(incident(clock, muted=13), "http://facmon.test")
    notifier.send(payload)
    sent = notifier.sent[-1]
    assert sent.unicode and sent.parts == len(machine.sent) == 2
    assert all(m["Coding"] == "Unicode_No_Compression" and m["Number"] == NUMBER for m in machine.sent)
    assert {m["UDH"]["AllParts"] for m in machine.sent} == {2}  # concatenated: each part says "of 2"
    decoded = gammu.DecodeSMS(machine.sent)["Entries"][0]["Buffer"]
    assert decoded.startswith("جاری park: 1 الرٹ\ncritical GridOutage inv-main 05:00 PKT سے")
    assert decoded == fit(decoded, 2).text and not sent.cut


def test_an_english_message_is_gsm7_and_a_long_one_is_cut_to_max_parts(tmp_path):
    clock = FakeClock()
    machine = RecordingMachine()
    modem = dummy_modem(tmp_path / "modem", lambda: machine)
    GsmNotifier("oncall:gsm0", modem, (NUMBER,), max_parts=1, language="en", zones=ZONES).send(
        payload_of(incident(clock, muted=40), "http://facmon.test"))
    assert [m["Coding"] for m in machine.sent] == ["Default_No_Compression"]
    text = machine.sent[0]["Text"]
    assert len(text) <= 160 and text.startswith("FIRING park: 1 alert(s)\ncritical GridOutage inv-main since 05:00 PKT")


@pytest.mark.parametrize(("make_modem", "expected"), [
    (lambda tmp: GammuModem(str(tmp / "unplugged" / "ttyUSB2"), connection="at"), "absent or unplugged"),
    (lambda tmp: dummy_modem(tmp / "modem", lambda: RecordingMachine(fail=gammu.ERR_NOSIM)), "no SIM card"),
    (lambda tmp: dummy_modem(tmp / "modem", lambda: RecordingMachine(network="NoNetwork")),
     "not registered on a mobile network (NoNetwork)"),
    (lambda tmp: dummy_modem(tmp / "modem", lambda: RecordingMachine(fail=gammu.ERR_TIMEOUT)),
     "did not answer in time"),
], ids=["unplugged", "no-sim", "no-network", "timeout"])
def test_modem_failures_say_what_to_fix_and_the_outbox_keeps_the_notification(tmp_path, make_modem, expected):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    store.enqueue_notification("g", "oncall:gsm0", [FP], payload_of(incident(clock), "http://x"), clock.now())
    notifier = GsmNotifier("oncall:gsm0", make_modem(tmp_path), (NUMBER,))
    assert Delivery(store, {"oncall:gsm0": notifier}).deliver_due(clock.now()) == 0
    row = store.notifications()[0]
    assert row.status == "pending" and row.attempts == 1 and expected in row.last_error
    assert row.next_attempt_at > clock.now()
    store.close()


def test_a_modem_plugged_back_in_delivers_what_waited(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    store.enqueue_notification("g", "oncall:gsm0", [FP], payload_of(incident(clock), "http://x"), clock.now())
    folder = tmp_path / "modem"
    modem = GammuModem(str(folder), connection="none", model="dummy")
    delivery = Delivery(store, {"oncall:gsm0": GsmNotifier("oncall:gsm0", modem, (NUMBER,))})
    assert delivery.deliver_due(clock.now()) == 0  # the folder (the modem) is not there yet
    folder.mkdir()
    clock.advance(60)
    assert delivery.deliver_due(clock.now()) == 1
    assert store.notifications()[0].status == "sent"
    store.close()


def receive(folder: Path, *texts: str) -> None:
    """The network delivering replies from NUMBER: they land as files in the dummy modem's inbox folder."""
    inbox = gammu.StateMachine()
    inbox.SetConfig(0, {"Device": str(folder), "Connection": "none", "Model": "dummy"})
    inbox.Init()
    for text in texts:
        inbox.AddSMS({"Folder": 1, "Number": NUMBER, "Text": text, "State": "UnRead", "SMSC": {"Location": 1}})


def test_ack_replies_from_the_modem_inbox(tmp_path):
    modem = dummy_modem(tmp_path / "modem")
    receive(tmp_path / "modem", f"ack {FP[:6]}", "who is this?")
    assert len(list((tmp_path / "modem" / "sms" / "1").iterdir())) == 2
    acked: list[tuple[str, str]] = []
    answers = read_ack_replies(modem, lambda code, by: acked.append((code, by)) or "ok")
    assert acked == [(FP[:6], f"sms:{NUMBER}")] and answers == ["ok"]
    assert list((tmp_path / "modem" / "sms" / "1").iterdir()) == []  # read replies leave the modem
    assert read_ack_replies(modem, lambda code, by: "again") == []


def test_an_sms_ack_lands_in_the_alerts_acknowledgement_log(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    alert = incident(clock).alerts[0]
    store.save_alert(alert)
    modem = dummy_modem(tmp_path / "modem")
    receive(tmp_path / "modem", f"ACK {FP[:6]}", "ACK ffffff")
    answers = read_ack_replies(modem, functools.partial(acknowledge_code, store))
    assert answers == ["acknowledged GridOutage inv-main", "no active alert has code ffffff (already resolved?)"]
    detail = store.alert(FP)
    assert detail is not None and detail.alert.acked_by == f"sms:{NUMBER}"
    assert [(a.by, a.comment) for a in detail.acks] == [(f"sms:{NUMBER}", "acknowledged from the phone")]
    store.close()
