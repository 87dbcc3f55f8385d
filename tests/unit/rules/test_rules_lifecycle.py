"""Alert lifecycle on a FakeClock: thresholds with hysteresis, for, keep_firing_for, absence
(silence and LWT), the broker-outage hold, and restart without duplicates."""

from __future__ import annotations

from core.contract import Kind
from tests.unit.rules.rules_harness import Harness, all_devices_reporting, inverter, local

MONDAY_NOON = local("2026-01-05 12:00")  # open, no load-shedding


def test_battery_low_hysteresis_for_and_resolve(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=24.0)
    h.run(30, every=every)  # first low reading at +1 s
    assert h.state("BatteryLow", "inv-lab") == "pending"  # for: 30s
    h.run(1, every=every)
    assert h.state("BatteryLow", "inv-lab") == "firing"
    # Above the firing value but below `clear` (35): still firing, no flapping.
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=30.0)
    h.run(120, every=every)
    assert h.state("BatteryLow", "inv-lab") == "firing"
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=36.0)
    h.run(1, every=every)
    assert h.state("BatteryLow", "inv-lab") == "resolved"  # no keep_firing_for on BatteryLow
    assert [s for s in h.sent_summary()] == [("oncall:hook", "firing/new", ("BatteryLow",)),
                                             ("oncall:hook", "resolved/resolved", ("BatteryLow",))]
    transitions = [(t.from_state.value, t.to_state.value) for t in h.store.history() if t.rule == "BatteryLow"]
    assert transitions == [("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]


def test_pending_that_clears_before_for_never_notifies(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=20.0)
    h.run(20, every=every)
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=40.0)
    h.run(60, every=every)
    assert h.state("BatteryLow", "inv-lab") == "inactive"
    assert h.outbox() == []


def test_keep_firing_for_holds_a_flapping_grid(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=False)
    h.run(10, every=every)  # first reading without grid at +1 s
    assert h.state("GridOutage", "inv-main") == "pending"
    h.run(1, every=every)
    assert h.state("GridOutage", "inv-main") == "firing"  # for: 10s
    # The grid flickers back for 20 s (< keep_firing_for 30 s) and drops again: one alert, one page.
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=True)
    h.run(20, every=every)
    assert h.state("GridOutage", "inv-main") == "firing"
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=False)
    h.run(60, every=every)
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=True)
    h.run(30, every=every)  # grid back from +1 s; keep_firing_for 30 s
    assert h.state("GridOutage", "inv-main") == "firing"
    h.run(1, every=every)
    assert h.state("GridOutage", "inv-main") == "resolved"
    grid = [s for s in h.sent_summary() if "GridOutage" in s[2]]
    assert [s[1] for s in grid] == ["firing/new", "resolved/resolved"]


def test_absence_by_silence_and_by_last_will(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    h.run(10, every=every)
    del every[(Kind.OCCUPANCY, "occ-lab")]
    h.run(119, every=every)
    assert h.state("DeviceSilent", "occ-lab") == "inactive"
    h.run(1, every=every)
    assert h.state("DeviceSilent", "occ-lab") == "firing"  # exactly 120 s after the last reading
    # The last will: offline fires at once, without waiting for the silence window.
    h.status(Kind.OCCUPANCY, "occ-cafe", online=False)
    assert h.state("DeviceSilent", "occ-cafe") == "firing"
    h.status(Kind.OCCUPANCY, "occ-cafe", online=True)
    h.run(29, every=every)
    assert h.state("DeviceSilent", "occ-cafe") == "firing"  # keep_firing_for 30 s
    h.run(1, every=every)
    assert h.state("DeviceSilent", "occ-cafe") == "resolved"


def test_broker_outage_gives_one_monitoring_degraded_and_no_device_silent(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    h.run(10, every=every)
    h.engine.source_connected(False)
    assert h.state("MonitoringDegraded") == "firing"
    h.run(600)  # ten minutes with no readings at all: longer than every absence threshold
    assert [a.rule for a in h.engine.alerts() if a.state.value == "firing"] == ["MonitoringDegraded"]
    h.engine.source_connected(True)
    del every[(Kind.UPLINK, "uplink-jazz")]  # everything resumes except one uplink
    h.run(30, every=every)  # reconnect grace
    assert h.state("MonitoringDegraded") == "resolved"
    h.run(89, every=every)
    assert h.state("DeviceSilent", "uplink-jazz") == "inactive"
    h.run(1, every=every)
    assert h.state("DeviceSilent", "uplink-jazz") == "firing"  # its full 120 s window counted from the reconnect
    silent = [a.labels["device"] for a in h.engine.alerts() if a.rule == "DeviceSilent"]
    assert silent == ["uplink-jazz"]
    sent = h.sent_summary()
    assert sent[0] == ("oncall:hook", "firing/new", ("MonitoringDegraded",))
    assert sum(1 for s in sent if "MonitoringDegraded" in s[2] and s[1].startswith("resolved")) == 1


def test_restart_keeps_state_and_sends_no_duplicates(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=10.0)
    h.run(40, every=every)
    assert h.state("BatteryLow", "inv-lab") == "firing"
    [battery] = h.engine.alert_by_rule("BatteryLow")
    h.store.acknowledge(battery.fingerprint, "amina", "replacing fuse")
    before = len(h.outbox())
    h.restart()
    h.run(120, every=every)
    assert len(h.outbox()) == before  # nothing re-sent after the restart
    [after] = h.engine.alert_by_rule("BatteryLow")
    assert (after.state.value, after.acked_by, after.fired_at) == ("firing", "amina", battery.fired_at)
    # A resolve seen only by the new process is still sent, once.
    every[(Kind.INVERTER, "inv-lab")] = inverter(soc=60.0)
    h.run(61, every=every)
    assert h.sent_summary()[before:] == [("oncall:hook", "resolved/resolved", ("BatteryLow",))]


def test_restart_inside_keep_firing_for_keeps_the_timer(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=False)
    h.run(11, every=every)
    assert h.state("GridOutage", "inv-main") == "firing"
    every[(Kind.INVERTER, "inv-main")] = inverter(grid_ok=True)
    h.run(20, every=every)  # grid back from +1 s: 20 s of the 30 s keep_firing_for have run
    back_at = next(a.keep_firing_since for a in h.engine.alert_by_rule("GridOutage"))
    h.restart()
    h.run(11, every=every)
    assert h.state("GridOutage", "inv-main") == "resolved"  # 30 s after the grid came back, not after the restart
    [resolved] = h.engine.alert_by_rule("GridOutage")
    assert (resolved.resolved_at, resolved.keep_firing_since) == (back_at + 30, None)
