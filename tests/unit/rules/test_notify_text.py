"""Messages a phone shows well: site-local, labelled times; muted dependents summarised; the
SMS-length forms in English and Urdu; every language has every text."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from core.clock import FakeClock
from rules.alerts import Alert, AlertState, fingerprint
from rules.notifiers.sms_text import fit
from rules.notify import TEMPLATES_DIR, load_template, local_time, muted_summary, payload_of, render_sms, render_text
from rules.route import Notification

KARACHI = {"park": ZoneInfo("Asia/Karachi")}


def _payload(muted: int) -> dict:
    clock = FakeClock(1_767_607_200.0)  # 2026-01-05T10:00:00Z = 15:00 PKT
    labels = {"alertname": "BatteryRunoutPredicted", "site": "park", "device": "inv-main", "severity": "critical"}
    alert = Alert(fingerprint(labels), "BatteryRunoutPredicted", labels, {"summary": "Battery runs out in 40 min"},
                  AlertState.FIRING, clock.now(), clock.now())
    quiet = tuple(Alert(fingerprint({"d": str(i)}), "DeviceSilent",
                        {"alertname": "DeviceSilent", "site": "park", "device": f"ap-{i}", "severity": "warning"},
                        {}, AlertState.FIRING, muted_by=(f"inhibited:{alert.fingerprint}", "silence:s1"))
                  for i in range(muted))
    return payload_of(Notification("oncall", "k", {"site": "park"}, "firing", (alert,), quiet, "new"),
                      "https://facmon.park.pk")


def test_times_are_the_sites_local_time_labelled():
    assert local_time("2026-01-05T10:00:00.000Z", "park", KARACHI) == "15:00 PKT"
    assert local_time("2026-01-05T10:00:00.000Z", "elsewhere", KARACHI) == "10:00 UTC"


def test_thirteen_muted_dependents_are_one_line():
    payload = _payload(13)
    assert muted_summary(payload["facmon"]["muted"]) == [
        ("DeviceSilent", 13, "ap-0, ap-1, ap-2 +10", "inhibited, silence")]
    _, body = render_text(payload, "en", KARACHI)
    assert body.splitlines()[-4:] == ["Muted while this incident lasts (13):",
                                      "- DeviceSilent ap-0, ap-1, ap-2 +10 (inhibited, silence)",
                                      f"Acknowledge by SMS: reply ACK {payload['alerts'][0]['fingerprint'][:6]}",
                                      "Status page: https://facmon.park.pk/status/"]


def test_sms_forms_fit_one_or_two_parts_in_english_and_urdu():
    payload = _payload(13)
    code = payload["alerts"][0]["fingerprint"][:6]
    english = render_sms(payload, "en", KARACHI)
    assert english.splitlines() == ["FIRING park: 1 alert(s)",
                                    "critical BatteryRunoutPredicted inv-main since 15:00 PKT", "+13 muted:",
                                    "DeviceSilent x13", f"Reply ACK {code}", "https://facmon.park.pk/status/"]
    assert fit(english, 1).parts == 1 and not fit(english, 1).cut
    urdu = render_sms(payload, "ur", KARACHI)
    assert urdu.splitlines()[1] == "critical BatteryRunoutPredicted inv-main 15:00 PKT سے"
    assert fit(urdu, 3).unicode and fit(urdu, 3).parts == 3 and not fit(urdu, 3).cut


def test_every_language_has_every_text():
    for form in ("", "sms_"):
        keys = {language: set(load_template(language, form)) for language in ("en", "ur")}
        assert keys["en"] == keys["ur"], form
    assert sorted(p.name for p in TEMPLATES_DIR.glob("*.yaml")) == ["en.yaml", "sms_en.yaml", "sms_ur.yaml", "ur.yaml"]
