"""Routing on a FakeClock: one notification per site incident, group_wait/interval/repeat,
inhibition (muted alerts still listed), silences, acks and escalation."""

from __future__ import annotations

from core.contract import Kind
from rules.matchers import parse_matcher
from rules.route import Escalation, Route
from tests.unit.rules.rules_harness import Harness, all_devices_reporting, inverter, local, uplink

MONDAY_NOON = local("2026-01-05 12:00")


def _blackout(h: Harness, every: dict) -> None:
    """The whole park goes dark: grid down, batteries empty, both uplinks down."""
    every[(Kind.INVERTER, "inv-main")] = inverter(soc=5.0, grid_ok=False, mode="fault")
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=4.0, grid_ok=False, mode="fault")
    every[(Kind.UPLINK, "uplink-ptcl")] = uplink("PTCL", up=False)
    every[(Kind.UPLINK, "uplink-jazz")] = uplink("Jazz 4G", up=False)


def test_blackout_is_one_incident_with_dependent_alerts_inhibited(tmp_path):
    route = Route("oncall", group_wait_s=30, group_interval_s=300, repeat_interval_s=3600)
    h = Harness(tmp_path, MONDAY_NOON, routes=[route])
    every = all_devices_reporting(h)
    h.run(5, every=every)
    _blackout(h, every)
    h.run(120, every=every)
    sent = h.outbox()
    assert len(sent) == 1, h.sent_summary()
    payload = sent[0].payload
    assert payload["groupLabels"] == {"site": "park"}
    notified = sorted(a["labels"]["alertname"] for a in payload["alerts"])
    muted = sorted(a["labels"]["alertname"] for a in payload["facmon"]["muted"])
    assert notified == ["SitePowerLoss"]
    assert {"GridOutage", "InverterFault", "UplinkDown", "SiteOffline", "BatteryLow"} <= set(muted)
    source = next(a for a in h.engine.alerts() if a.rule == "SitePowerLoss")
    assert all(f"inhibited:{source.fingerprint}" in a["muted_by"] for a in payload["facmon"]["muted"])


def test_group_wait_collects_an_incident_and_group_interval_batches_changes(tmp_path):
    route = Route("oncall", group_wait_s=30, group_interval_s=120, repeat_interval_s=3600)
    h = Harness(tmp_path, MONDAY_NOON, routes=[route])
    every = all_devices_reporting(h)
    h.run(5, every=every)
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=False)
    every[(Kind.INVERTER, "inv-lab")] = inverter(grid_ok=False)
    h.run(40, every=every)  # first readings at +6 s, both GridOutage fire at +16 s; the group waits 30 s
    assert h.outbox() == []
    h.run(1, every=every)
    assert h.sent_summary() == [("oncall:hook", "firing/new", ("GridOutage", "GridOutage"))]
    assert h.outbox()[0].created_at == MONDAY_NOON + 6 + 10 + 30
    every[(Kind.UPLINK, "uplink-ptcl")] = uplink("PTCL", up=False)
    h.run(200, every=every)  # UplinkDown fires at +31 s, but the update waits for group_interval
    updates = h.outbox()[1:]
    assert [(n.payload["facmon"]["reason"], n.created_at - h.outbox()[0].created_at) for n in updates] == [
        ("update", 120.0)]


def test_repeat_until_acknowledged_then_silence_mutes(tmp_path):
    route = Route("oncall", group_wait_s=0, group_interval_s=60, repeat_interval_s=600)
    h = Harness(tmp_path, MONDAY_NOON, routes=[route])
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(grid_ok=False)
    h.run(11, every=every)
    assert len(h.outbox()) == 1
    h.run(1200, step=10, every=every)  # devices report every 10 s from here on
    assert [n.payload["facmon"]["reason"] for n in h.outbox()] == ["new", "repeat", "repeat"]
    [alert] = h.engine.alert_by_rule("GridOutage")
    h.store.acknowledge(alert.fingerprint, "bilal", "generator started")
    h.run(3000, step=10, every=every)
    assert len(h.outbox()) == 3  # acknowledged: no more repeats
    # A silence on the site mutes even an unacknowledged new alert.
    h.store.create_silence([parse_matcher("site=park"), parse_matcher("alertname=BatteryLow")], h.clock.now(),
                           h.clock.now() + 3600, "bilal", "battery swap")
    every[(Kind.INVERTER, "inv-main")] = inverter(soc=10.0)
    h.run(120, every=every)
    [battery] = h.engine.alert_by_rule("BatteryLow")
    assert battery.state.value == "firing" and battery.muted_by[0].startswith("silence:")
    assert len(h.outbox()) == 3


def test_escalation_when_unacknowledged(tmp_path):
    route = Route("oncall", group_wait_s=0, group_interval_s=60, repeat_interval_s=86400,
                  escalations=(Escalation(900, "duty-manager"), Escalation(1800, "director")))
    h = Harness(tmp_path, MONDAY_NOON, routes=[route])
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(grid_ok=False)
    h.run(11, every=every)
    h.run(890, step=10, every=every)
    h.run(9, every=every)
    assert [n.receiver for n in h.outbox()] == ["oncall:hook"]
    h.run(1, every=every)
    assert [n.receiver for n in h.outbox()] == ["oncall:hook", "duty-manager:hook"]
    [alert] = h.engine.alert_by_rule("GridOutage")
    h.store.acknowledge(alert.fingerprint, "duty", "")
    h.run(3600, step=10, every=every)
    assert [n.receiver for n in h.outbox()] == ["oncall:hook", "duty-manager:hook"]  # acked: no level 2


def test_routes_by_severity_and_watchdog_heartbeat(tmp_path):
    routes = [Route("heartbeat", (parse_matcher("alertname=Watchdog"),), group_by=(), group_wait_s=0,
                    group_interval_s=60, repeat_interval_s=60),
              Route("pager", (parse_matcher("severity=critical"),), group_wait_s=0),
              Route("digest", group_wait_s=3600)]
    h = Harness(tmp_path, local("2026-01-05 12:30"), routes=routes, watchdog=True)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(grid_ok=False)  # unscheduled (12:30), nobody in the building
    h.run(300, every=every)
    receivers = [n.receiver for n in h.outbox()]
    assert receivers.count("heartbeat:hook") == 5  # every 60 s while alive
    [outage] = h.engine.alert_by_rule("GridOutage")
    assert outage.labels["outage"] == "unscheduled"
    # The building is empty, but the network gear now runs on the battery: it pages (issue 12, item 8).
    assert outage.labels["severity"] == "critical" and "digest" not in outage.labels
    assert receivers.count("pager:hook") == 1 and "digest:hook" not in receivers


def test_escalation_counts_from_the_first_notification_not_first_seen(tmp_path):
    # group_wait 300 s: on-call is told 300 s after the alert fired; they get the full 900 s from then.
    route = Route("oncall", group_wait_s=300, group_interval_s=60, repeat_interval_s=86400,
                  escalations=(Escalation(900, "duty-manager"),))
    h = Harness(tmp_path, MONDAY_NOON, routes=[route])
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(grid_ok=False)
    h.run(11, every=every)  # first reading at +1 s, pending; firing at +11 s: the incident is first seen
    [alert] = h.engine.alert_by_rule("GridOutage")
    assert alert.state.value == "firing"
    h.run(300, every=every)
    [first] = h.outbox()
    assert (first.receiver, first.created_at) == ("oncall:hook", alert.fired_at + 300)
    h.run(890, step=10, every=every)
    h.run(9, every=every)  # first seen + 900 s passed long ago; first notification + 900 s not yet
    assert [n.receiver for n in h.outbox()] == ["oncall:hook"]
    h.run(1, every=every)
    assert [(n.receiver, n.created_at - first.created_at) for n in h.outbox()] == [
        ("oncall:hook", 0.0), ("duty-manager:hook", 900.0)]
