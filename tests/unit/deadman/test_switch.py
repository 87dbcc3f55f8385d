"""The dead man's switch, pure: signed heartbeats (forged, replayed and stale ones refused), one page
when a site goes quiet, one when it returns with how long it was dark, none while it beats."""

from __future__ import annotations

import pytest

from core.clock import FakeClock
from core.heartbeat import Heartbeat, HeartbeatRefused, signature, verify
from deadman.switch import DeadMansSwitch, duration_text

SECRET = b"shared"
START = 1_767_607_200.0  # 2026-01-05T10:00:00Z = 15:00 PKT


def _beat(at: float, summary: str = "") -> Heartbeat:
    return Heartbeat("park", at, "Asia/Karachi", summary, 1 if summary else 0)


def test_a_signed_fresh_heartbeat_is_accepted():
    body = _beat(START, "GridOutage inv-main").body()
    assert verify(SECRET, body, signature(SECRET, body), START + 1, None) == _beat(START, "GridOutage inv-main")


@pytest.mark.parametrize(("signed", "now", "last", "status", "reason"), [
    (None, START, None, 401, "missing or wrong"),
    ("sha256=" + "0" * 64, START, None, 401, "missing or wrong"),
    (signature(b"guess", _beat(START).body()), START, None, 401, "same heartbeat secret"),
    (signature(SECRET, _beat(START).body()), START, START, 409, "a replay"),
    (signature(SECRET, _beat(START).body()), START + 600, START - 60, 422, "off the watchdog's clock"),
])
def test_forged_replayed_and_stale_heartbeats_are_refused(signed, now, last, status, reason):
    with pytest.raises(HeartbeatRefused) as err:
        verify(SECRET, _beat(START).body(), signed, now, last)
    assert err.value.status == status and reason in str(err.value)


def test_a_tampered_summary_breaks_the_signature():
    signed = signature(SECRET, _beat(START, "all well").body())
    with pytest.raises(HeartbeatRefused):
        verify(SECRET, _beat(START, "GridOutage").body(), signed, START, None)


def test_one_page_when_quiet_none_while_beating_one_on_recovery():
    clock = FakeClock(START)
    switch = DeadMansSwitch(180, clock.now(), ["park"])
    for _ in range(10):  # a heartbeat a minute for ten minutes
        clock.advance(60)
        assert switch.heartbeat(_beat(clock.now(), "GridOutage inv-main; BatteryLow inv-main (18)"),
                                clock.now()) == []
        assert switch.check(clock.now()) == []
    last = clock.now()  # 15:10 PKT
    clock.advance(179)
    assert switch.check(clock.now()) == []
    clock.advance(1)
    (page,) = switch.check(clock.now())
    assert (page.status, page.text) == ("firing", "park unreachable since 15:10 PKT; last known: GridOutage "
                                                  "inv-main; BatteryLow inv-main (18)")
    for _ in range(60):
        clock.advance(60)
        assert switch.check(clock.now()) == []  # paged once per silence
    (back,) = switch.heartbeat(_beat(clock.now()), clock.now())
    assert back.status == "resolved" and back.dark_since == last
    assert back.text == "park reachable again at 16:13 PKT after 1 h 3 min dark; now: no alert firing"
    assert switch.heartbeat(_beat(clock.now() + 60), clock.now() + 60) == []


def test_an_expected_site_that_never_beats_is_paged_for():
    switch = DeadMansSwitch(180, START, ["park", "annex"])
    switch.heartbeat(Heartbeat("park", START + 100, "UTC"), START + 100)
    pages = switch.check(START + 180)
    assert [(p.site, p.text) for p in pages] == [("annex", "annex unreachable since 10:00 UTC; last known: "
                                                           "never heard from")]


def test_durations():
    assert [duration_text(s) for s in (42, 60, 3599, 3600, 7322)] == ["42 s", "1 min", "59 min", "1 h 0 min",
                                                                      "2 h 2 min"]
