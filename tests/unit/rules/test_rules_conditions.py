"""Every condition type on a FakeClock, plus the rule file validation that `facmon rules check` runs."""

from __future__ import annotations

import numpy as np
import pytest

from core.contract import Kind
from rules.evaluate import Window, render, time_to_empty
from rules.model import RuleFileError, check_rule_files, load_rule_files
from tests.unit.rules.rules_harness import (
    Harness,
    all_devices_reporting,
    generator,
    inverter,
    local,
    occupancy,
    plug,
    uplink,
)

MONDAY_NOON = local("2026-01-05 12:00")


def test_window_aggregates_match_numpy_and_expire_by_time():
    window = Window(seconds=10, readings=None)
    for t, v in [(0, 1.0), (2, None), (4, 3.0), (6, 5.0), (8, False), (10, 7.0)]:
        window.add(t, v)
    # t=0 fell out of the 10 s window when t=10 arrived.
    assert len(window) == 5
    assert window.aggregate("mean") == pytest.approx(np.mean([3.0, 5.0, 0.0, 7.0]))
    assert window.aggregate("max") == 7.0 and window.aggregate("min") == 0.0
    assert window.aggregate("percentile", 50) == pytest.approx(np.percentile([3.0, 5.0, 0.0, 7.0], 50))
    assert window.aggregate("loss_ratio") == pytest.approx(2 / 5)
    rate = Window(seconds=None, readings=3)
    for t in range(5):
        rate.add(float(t), 10.0 - 2.0 * t)
    assert rate.aggregate("rate") == pytest.approx(-2.0)
    assert len(rate) == 3


def test_time_to_empty_is_a_least_squares_projection():
    points = [(float(t), 50.0 - 0.01 * t + (0.3 if t % 2 else -0.3)) for t in range(0, 600, 10)]
    tte = time_to_empty(points, empty_at=5.0)
    fitted_last = 50.0 - 0.01 * 590
    assert tte == pytest.approx((fitted_last - 5.0) / 0.01, rel=0.02)
    assert time_to_empty([(0.0, 40.0), (10.0, 41.0)]) is None  # charging: never empty


def test_render_never_fails():
    assert render("{site} {value:.1f}% {nope}", {"site": "park", "value": 12.345}) == "park 12.3% {nope}"
    assert render("{value:.0f}", {"value": "n/a"}) == "n/a"


def test_uplink_degraded_by_latency_percentile_with_hysteresis(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.UPLINK, "uplink-ptcl")] = uplink("PTCL", rtt=900.0)
    h.run(400, step=10, every=every)
    [alert] = h.engine.alert_by_rule("UplinkDegradedLatency")
    assert alert.state.value == "firing" and alert.labels["alertname"] == "UplinkDegraded"
    assert alert.labels["cause"] == "latency" and alert.labels["isp"] == "PTCL"
    every[(Kind.UPLINK, "uplink-ptcl")] = uplink("PTCL", rtt=300.0)  # below 400 but above clear (250)
    h.run(600, step=10, every=every)
    assert h.state("UplinkDegradedLatency") == "firing"
    every[(Kind.UPLINK, "uplink-ptcl")] = uplink("PTCL", rtt=40.0)
    h.run(600, step=10, every=every)
    assert h.state("UplinkDegradedLatency") == "resolved"


def test_failover_then_site_offline(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.UPLINK, "uplink-ptcl")] = uplink("PTCL", up=False)
    h.run(60, every=every)
    assert h.state("FailoverActive") == "firing"
    assert h.state("SiteOffline") == "inactive"
    every[(Kind.UPLINK, "uplink-jazz")] = uplink("Jazz 4G", up=False)
    h.run(60, every=every)
    assert h.state("SiteOffline") == "firing"
    assert h.state("FailoverActive") == "resolved"  # the backup is down too: no failover any more


def test_battery_runout_before_scheduled_grid_return(tmp_path):
    # 16:00-17:00 is scheduled load-shedding; the battery falls 0.05 %/s from 60 %: empty (5 %) in
    # ~18 min, before the grid is due back at 17:00 → predicted runout; at 0.005 %/s it lasts.
    h = Harness(tmp_path, local("2026-01-05 16:02"))
    every = all_devices_reporting(h)
    soc = 60.0
    for _ in range(12):
        soc -= 0.05 * 10
        every[(Kind.INVERTER, "inv-main")] = inverter(soc=soc, grid_ok=False)
        h.run(10, step=10, every=every)
    [alert] = h.engine.alert_by_rule("BatteryRunoutPredicted")
    assert alert.state.value == "firing"
    # Minutes to empty as predicted when it fired, at the 5th point (min_points): SoC 57.5 % → 5 %.
    assert alert.value == pytest.approx((57.5 - 5.0) / 0.05 / 60, rel=0.02)
    assert "17:00" in alert.annotations["summary"]
    assert h.state("BatteryRunoutPredicted", "inv-lab") == "inactive"  # on grid: no prediction
    slow = Harness(tmp_path / "slow", local("2026-01-05 16:02"))
    every = all_devices_reporting(slow)
    soc = 90.0
    for _ in range(12):
        soc -= 0.005 * 10
        every[(Kind.INVERTER, "inv-main")] = inverter(soc=soc, grid_ok=False)
        slow.run(10, step=10, every=every)
    assert slow.state("BatteryRunoutPredicted", "inv-main") == "inactive"


def test_grid_outage_context_scheduled_vs_unscheduled_and_occupied(tmp_path):
    h = Harness(tmp_path, local("2026-01-05 10:10"))  # inside the 10:00-11:00 schedule
    every = all_devices_reporting(h)
    every[(Kind.OCCUPANCY, "occ-lab")] = occupancy("Lab", True, people=5)
    every[(Kind.INVERTER, "inv-lab")] = inverter(grid_ok=False)
    h.run(20, every=every)
    [alert] = h.engine.alert_by_rule("GridOutage")
    # Occupancy plays no part in a grid outage's severity (the network gear is on the battery either way).
    assert (alert.labels["outage"], alert.labels["severity"], alert.labels.get("occupancy")) == (
        "scheduled", "warning", None)
    # The outage outlasts the published window by more than the 10-minute grace: unscheduled, critical.
    h.run(50 * 60, step=10, every=every)
    assert h.engine.alert_by_rule("GridOutage")[0].labels["outage"] == "scheduled"  # 11:00:20, within grace
    h.run(11 * 60, step=10, every=every)
    [alert] = h.engine.alert_by_rule("GridOutage")
    assert (alert.labels["outage"], alert.labels["severity"]) == ("unscheduled", "critical")
    assert alert.fingerprint == h.engine.alert_by_rule("GridOutage")[0].fingerprint


def test_occupancy_after_hours_and_over_capacity(tmp_path):
    h = Harness(tmp_path, local("2026-01-05 17:50"))  # open until 18:00
    every = all_devices_reporting(h)
    every[(Kind.OCCUPANCY, "occ-room-1")] = occupancy("کمرہ 1", True, people=15)  # capacity 12
    h.run(25 * 60, step=10, every=every)
    assert h.state("RoomOverCapacity", "occ-room-1") == "firing"
    [alert] = h.engine.alert_by_rule("RoomOverCapacity")
    assert alert.annotations["summary"] == "کمرہ 1 at park holds 15 people, over its capacity of 12"
    # Closed from 18:00; `for: 10m` → fires at 18:10, not during opening hours.
    [after_hours] = h.engine.alert_by_rule("OccupancyAfterHours")
    assert after_hours.state.value == "firing"
    assert after_hours.fired_at == pytest.approx(local("2026-01-05 18:10"), abs=10)


def test_rule_file_errors_name_file_line_and_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n"
        "  - name: HotInverter\n"
        "    kind: inverter\n"
        "    condition:\n"
        "      threshold: {metric: inverter_temp_c, op: '>', value: 70, clear: 80}\n"
        "  - name: Quiet\n"
        "    condition: {absence: {after_s: soon}}\n"
        "    severity: high\n"
        "  - name: HotInverter\n"
        "    kind: uplink\n"
        "    condition:\n"
        "      threshold: {metric: link_up, op: '==', value: false}\n")
    problems = check_rule_files([bad])
    assert problems == [
        f"{bad}:5: rule HotInverter: condition.threshold: clear (80) must be below the firing value (70), "
        "or the alert would flap",
        f"{bad}:7: rule Quiet: condition.absence.after_s: 'soon' is not a duration; write '30s', '5m', '1h30m', "
        "'250ms', '1d' or a number of seconds (got 'soon')",
        f"{bad}:8: rule Quiet: severity: unknown key (check the spelling)",
    ]
    with pytest.raises(RuleFileError):
        load_rule_files([bad])
    dup = tmp_path / "dup.yaml"
    dup.write_text("rules:\n  - name: A\n    kind: uplink\n    condition: {absence: {after_s: 1m}}\n"
                   "  - name: A\n    kind: uplink\n    condition: {absence: {after_s: 2m}}\n")
    assert check_rule_files([dup]) == [f"{dup}:5: rule A: name: already defined at {dup}:2; names must be unique"]


def test_a_load_shedding_grace_without_its_context_or_past_two_hours_is_refused_at_its_line(tmp_path):
    bad = tmp_path / "grace.yaml"
    rule = ("rules:\n  - name: G\n    kind: inverter\n    condition: {threshold: {metric: grid_ok, op: '==', "
            "value: false}}\n    context:\n")
    bad.write_text(rule + "      load_shedding_grace: 10m\n")
    [problem] = check_rule_files([bad])
    assert problem.startswith(f"{bad}:") and "set load_shedding too" in problem
    bad.write_text(rule + "      load_shedding: {scheduled: {severity: warning}}\n      load_shedding_grace: 3h\n")
    [problem] = check_rule_files([bad])
    assert problem.startswith(f"{bad}:6: rule G: context: load_shedding_grace is at most 2h"), problem


def test_unknown_metric_is_reported_at_its_metric_line(tmp_path):
    bad = tmp_path / "metrics.yaml"
    bad.write_text(
        "rules:\n"
        "  - name: Hot\n"
        "    kind: inverter\n"
        "    labels: {severity: warning}\n"
        "    condition:\n"
        "      aggregate:\n"
        "        func: mean\n"
        "        window_s: 2m\n"
        "        metric: inverter_tmp_c\n"
        "        op: '>'\n"
        "        value: 70\n"
        "  - name: Dark\n"
        "    condition:\n"
        "      composite:\n"
        "        all:\n"
        "          - {kind: uplink, metric: link_up, op: '==', value: false}\n"
        "          - kind: uplink\n"
        "            op: '=='\n"
        "            metric: isp\n"
        "            value: PTCL\n")
    problems = check_rule_files([bad])
    assert [p.split(": ")[0:3] for p in problems] == [
        [f"{bad}:9", "rule Hot", "condition.aggregate.metric"],
        [f"{bad}:19", "rule Dark", "condition.composite.all.1.metric"],
    ]
    assert "inverter readings have no metric 'inverter_tmp_c'; known: grid_v," in problems[0]
    assert "'isp' is a label; select it with match: [\"isp=...\"]" in problems[1]


def _every_30_s_ticking_every_5_s(h: Harness, seconds: int, every: dict) -> None:
    """Readings every 30 s, at :15 and :45 past the minute; evaluation ticks every 5 s between them."""
    for _ in range(seconds // 5):
        h.clock.advance(5)
        if round(h.clock.now()) % 30 == 15:
            for (kind, device), metrics in every.items():
                h.send(kind, device, metrics)
        h.engine.tick()


GRID_OUTAGE_WITHOUT_GRACE = """rules:
  - name: GridOutage
    kind: inverter
    condition: {threshold: {metric: grid_ok, op: "==", value: false}}
    for: 10s
    labels: {severity: critical}
    context:
      load_shedding: {scheduled: {severity: warning}, unscheduled: {severity: critical}}
"""


def _outage_through_the_10_to_11_window(h: Harness, after_s: int, grid_back: bool) -> tuple[str, str, str]:
    """The grid out from 10:00:15 (inverters report every 30 s); at 11:00 the last reading (10:59:45)
    still shows it out. Then `after_s` more, the grid back or not. The GridOutage alert's (state,
    outage, severity) at 11:00:00 must be (firing, scheduled, warning); returns them at the end."""
    every = all_devices_reporting(h)
    _every_30_s_ticking_every_5_s(h, 120, every)  # to 10:00:00
    every[(Kind.INVERTER, "inv-main")] = inverter(soc=80, grid_ok=False)
    _every_30_s_ticking_every_5_s(h, 3600, every)  # to 11:00:00
    [outage] = h.engine.alert_by_rule("GridOutage")
    assert (outage.state.value, outage.labels["outage"], outage.labels["severity"]) == (
        "firing", "scheduled", "warning")
    if grid_back:
        every[(Kind.INVERTER, "inv-main")] = inverter(soc=80, grid_ok=True)
    _every_30_s_ticking_every_5_s(h, after_s, every)
    [outage] = h.engine.alert_by_rule("GridOutage")
    return outage.state.value, outage.labels["outage"], outage.labels["severity"]


def _paged_critical(h: Harness) -> bool:
    return any(a["labels"]["alertname"] == "GridOutage" and a["status"] == "firing"
               and a["labels"]["severity"] == "critical" for n in h.outbox() for a in n.payload["alerts"])


def test_a_scheduled_outage_is_not_called_unscheduled_when_its_window_ends_before_the_next_reading(tmp_path):
    """At 11:00 the latest reading was taken inside the window: no evidence of an overrun, so no
    critical page at the window's end (a rule without grace). A reading after 11:00 that still shows
    the grid out is an overrun: critical."""
    rule_file = tmp_path / "grid.yaml"
    rule_file.write_text(GRID_OUTAGE_WITHOUT_GRACE)
    pack = load_rule_files([rule_file])
    h = Harness(tmp_path / "back", local("2026-01-05 09:58:00"), pack=pack)
    assert _outage_through_the_10_to_11_window(h, 60, grid_back=True) == ("resolved", "scheduled", "warning")
    assert not _paged_critical(h)
    h = Harness(tmp_path / "overrun", local("2026-01-05 09:58:00"), pack=pack)
    assert _outage_through_the_10_to_11_window(h, 60, grid_back=False) == ("firing", "unscheduled", "critical")
    assert _paged_critical(h)


def test_the_park_packs_grid_outage_forgives_ten_minutes_around_a_window(tmp_path):
    """load_shedding_grace: 10m. Overrunning the 10:00-11:00 window by 9 minutes is still scheduled; by
    11 minutes it is not. Cut 5 minutes early (09:55) is scheduled from the start; 15 minutes early
    (09:45) is unscheduled until the window begins."""
    h = Harness(tmp_path / "overrun", local("2026-01-05 09:58:00"))
    assert _outage_through_the_10_to_11_window(h, 540, grid_back=False) == ("firing", "scheduled", "warning")
    _every_30_s_ticking_every_5_s(h, 120, all_devices_reporting(h) | {
        (Kind.INVERTER, "inv-main"): inverter(soc=80, grid_ok=False)})
    [outage] = h.engine.alert_by_rule("GridOutage")
    assert (outage.labels["outage"], outage.labels["severity"]) == ("unscheduled", "critical")
    for early_min, expected in ((5, "scheduled"), (15, "unscheduled")):
        h = Harness(tmp_path / f"early{early_min}", local("2026-01-05 09:40:00"))
        every = all_devices_reporting(h)
        _every_30_s_ticking_every_5_s(h, (20 - early_min) * 60, every)
        every[(Kind.INVERTER, "inv-main")] = inverter(soc=80, grid_ok=False)
        _every_30_s_ticking_every_5_s(h, 60, every)
        [outage] = h.engine.alert_by_rule("GridOutage")
        assert (outage.state.value, outage.labels["outage"]) == ("firing", expected), early_min


def test_a_cut_just_after_a_window_shorter_than_the_grace_is_still_the_schedules(tmp_path):
    """A 5-minute window (10:00-10:05) and the park pack's 10-minute grace: a cut seen at 10:08 is
    within 3 minutes of the window, though neither 09:58, 10:08 nor 10:18 lies in it."""
    from core.site import WeeklySchedule, load_site
    from tests.unit.rules.rules_harness import PARK

    site = load_site(PARK)
    short = site.model_copy(update={"load_shedding": WeeklySchedule.model_validate({"daily": ["10:00-10:05"]})})
    h = Harness(tmp_path, local("2026-01-05 10:06:00"), site=short)
    every = all_devices_reporting(h)
    _every_30_s_ticking_every_5_s(h, 60, every)
    every[(Kind.INVERTER, "inv-main")] = inverter(soc=80, grid_ok=False)
    _every_30_s_ticking_every_5_s(h, 60, every)  # seen at 10:07:15 and 10:07:45, firing 10 s later
    [outage] = h.engine.alert_by_rule("GridOutage")
    assert (outage.state.value, outage.labels["outage"], outage.labels["severity"]) == (
        "firing", "scheduled", "warning")


def test_a_sensor_quiet_when_healthy_is_called_silent_after_its_max_quiet_not_the_rules_two_minutes(tmp_path):
    """A Zigbee PIR reports on motion and checks in hourly: its site file says max_quiet: 2h. Quiet for
    an hour and a half it is not silent; past two hours it is. A PIR without max_quiet is silent after
    DeviceSilent's 120 s, and the quiet one's last will still counts at once."""
    from core.site import load_site
    from tests.unit.rules.rules_harness import PARK

    site = load_site(PARK)
    quiet, plain, *rest = site.occupancy_sensors
    site = site.model_copy(update={"occupancy_sensors": (quiet.model_copy(update={"max_quiet_s": 7200.0}), plain,
                                                         *rest)})
    h = Harness(tmp_path, MONDAY_NOON, site=site)
    every = all_devices_reporting(h)
    h.run(30, step=30, every=every)
    del every[(Kind.OCCUPANCY, quiet.id)], every[(Kind.OCCUPANCY, plain.id)]
    h.run(300, step=30, every=every)
    assert (h.state("DeviceSilent", plain.id), h.state("DeviceSilent", quiet.id)) == ("firing", "inactive")
    h.run(5400, step=60, every=every)  # 1 h 35 min quiet
    assert h.state("DeviceSilent", quiet.id) == "inactive"
    h.run(1800, step=60, every=every)  # 2 h 05 min quiet
    assert h.state("DeviceSilent", quiet.id) == "firing"
    h.send(Kind.OCCUPANCY, quiet.id, occupancy(quiet.room, True))
    h.run(60, step=30, every=every | {(Kind.OCCUPANCY, quiet.id): occupancy(quiet.room, False)})
    assert h.state("DeviceSilent", quiet.id) == "resolved"
    h.status(Kind.OCCUPANCY, quiet.id, False)
    h.run(30, step=30, every=every)
    assert h.state("DeviceSilent", quiet.id) == "firing"


def test_the_routers_plug_switched_off_warns_after_a_minute_and_resolves_when_it_is_on(tmp_path):
    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.PLUG, "plug-router")] = plug(relay_on=False, power_w=0.0)
    h.run(30, step=5, every=every)
    assert h.state("PlugSwitchedOff") == "pending"
    h.run(40, step=5, every=every)
    [off] = h.engine.alert_by_rule("PlugSwitchedOff")
    assert off.state.value == "firing" and off.labels["severity"] == "warning"
    assert "plug-router plug at park is switched off" in off.annotations["summary"]
    every[(Kind.PLUG, "plug-router")] = plug()
    h.run(10, step=5, every=every)
    assert h.state("PlugSwitchedOff") == "resolved"


def test_generator_rules_of_the_park_pack(tmp_path):
    """GeneratorFailedToStart pages at once, FuelLow holds for a minute with hysteresis, and
    GeneratorRunningOnGrid waits out the cool-down run before calling the auto-stop failed."""

    h = Harness(tmp_path, MONDAY_NOON)
    every = all_devices_reporting(h)
    every[(Kind.INVERTER, "inv-main")] = inverter(soc=25.0, grid_ok=False)
    every[(Kind.GENERATOR, "gen-main")] = generator("fail_to_start")
    h.run(20, step=5, every=every)
    [failed] = h.engine.alert_by_rule("GeneratorFailedToStart")
    assert failed.state.value == "firing" and failed.labels["severity"] == "critical"
    assert "gen-main" in failed.annotations["summary"]

    every[(Kind.GENERATOR, "gen-main")] = generator("running", fuel=18.0, output_w=4000.0)
    h.run(30, step=5, every=every)
    assert h.state("FuelLow") == "pending"
    h.run(60, step=5, every=every)
    assert h.state("FuelLow") == "firing" and h.state("GeneratorFailedToStart") == "resolved"
    every[(Kind.GENERATOR, "gen-main")] = generator("running", fuel=25.0, output_w=4000.0)  # above 20, below clear
    h.run(120, step=5, every=every)
    assert h.state("FuelLow") == "firing"

    every[(Kind.INVERTER, "inv-main")] = inverter(soc=60.0, grid_ok=True)  # the grid is back; it runs on
    h.run(240, step=5, every=every)
    assert h.state("GeneratorRunningOnGrid") == "pending"  # a cool-down takes a minute; this is longer
    h.run(120, step=5, every=every)
    [on_grid] = h.engine.alert_by_rule("GeneratorRunningOnGrid")
    assert on_grid.state.value == "firing" and on_grid.labels["site"] == "park"
    every[(Kind.GENERATOR, "gen-main")] = generator("off", fuel=25.0)
    h.run(60, step=5, every=every)
    assert h.state("GeneratorRunningOnGrid") in ("resolved", "inactive")


@pytest.mark.parametrize("limit", [{"seconds": 30.0, "readings": None}, {"seconds": None, "readings": 17}])
def test_incremental_window_aggregates_agree_with_numpy_over_the_same_values(limit):
    """The window keeps its aggregates as values come and go; over a long random stream (nulls,
    false, repeats, evictions by time or count) they equal numpy's over what the window holds."""
    rng = np.random.default_rng(7)
    window = Window(**limit)
    sent: list[tuple[float, object]] = []
    for step in range(3000):
        raw = rng.choice([None, False, True, float(rng.integers(-5, 5)), float(rng.normal(50, 20))],
                         p=[0.05, 0.05, 0.05, 0.25, 0.6])
        raw = raw if raw is None or isinstance(raw, bool) else float(raw)
        window.add(step * 0.7, raw)
        sent.append((step * 0.7, raw))
        held = np.array([v for v in window.values if v == v])
        if step % 37 or not held.size:
            continue
        assert window.aggregate("mean") == pytest.approx(held.mean(), rel=1e-9, abs=1e-9)
        assert (window.aggregate("min"), window.aggregate("max")) == (held.min(), held.max())
        for q in (5, 50, 95, 99):
            assert window.aggregate("percentile", q) == pytest.approx(np.percentile(held, q), rel=1e-12, abs=1e-12)
        kept = sent[-limit["readings"]:] if limit["readings"] else [(t, r) for t, r in sent if t > step * 0.7 - 30]
        assert len(kept) == len(window)
        assert window.aggregate("loss_ratio") == sum(r is None or r is False for _, r in kept) / len(kept)


def test_composites_judged_per_reading_agree_with_judging_every_device_of_the_site():
    """After a reading, a composite takes the other devices' truth from the last full judgement
    instead of looking at them all again; with nothing time-dependent in between, both must agree on
    every reading of a long random stream (grid flaps, batteries, links, roles, the generator)."""
    from core.contract import DeviceKey, Reading
    from core.site import load_site
    from rules.evaluate import Evaluator
    from tests.unit.rules.rules_harness import PACK, PARK

    site = load_site(PARK)
    pack = load_rule_files([PACK])
    composites = {i for i, r in enumerate(pack.rules) if r.condition.composite is not None}
    incremental = Evaluator(pack, {site.id: site}, MONDAY_NOON)
    full = Evaluator(pack, {site.id: site}, MONDAY_NOON)
    for evaluator in (incremental, full):
        evaluator.set_source_connected(True, MONDAY_NOON)
        evaluator.on_tick(MONDAY_NOON)
    rng = np.random.default_rng(11)
    devices = [(Kind.INVERTER, i.id) for i in site.inverters] + [(Kind.UPLINK, u.id) for u in site.uplinks] + \
        [(Kind.GENERATOR, g.id) for g in site.generators]
    compared = 0
    ever_active: set[str] = set()
    for step in range(2000):
        now = MONDAY_NOON + 1 + step * 0.01  # well inside every absence window: nothing ages
        kind, device = devices[rng.integers(len(devices))]
        if kind is Kind.INVERTER:
            metrics = inverter(soc=float(rng.choice([3.0, 50.0])), grid_ok=bool(rng.integers(2)))
        elif kind is Kind.UPLINK:
            metrics = uplink("PTCL" if device == "uplink-ptcl" else "Jazz 4G", up=bool(rng.integers(2)))
        else:
            metrics = generator(str(rng.choice(["off", "running"])))
        reading = Reading(DeviceKey(site.id, kind, device), int(now * 1000), step, metrics)
        got = {(o.rule, o.active) for o in incremental.on_reading(reading, now)}
        full._term_counts.clear()  # forces the full judgement of every term
        want = {(o.rule, o.active) for o in full.on_reading(reading, now)}
        assert got == want, step
        states = [(i, inst.active) for (i, _), inst in incremental._instances.items() if i in composites]
        assert states == [(i, inst.active) for (i, _), inst in full._instances.items() if i in composites]
        compared += bool(states)
        ever_active |= {pack.rules[i].name for i, active in states if active}
    assert compared > 1500
    # The stream reached these states, so the comparison judged something.
    assert {"SitePowerLoss", "SiteOffline", "FailoverActive"} <= ever_active


@pytest.mark.parametrize(("seed", "quiet"), [(5, False), (6, False), (8, False), (5, True), (9, True)])
def test_ticks_that_look_only_at_what_is_due_agree_with_ticks_that_look_at_every_device(seed: int, quiet: bool):
    """A tick judges device silences from a deadline heap, context rules only when a site's schedule
    or occupancy changed, absent-counting composite terms when one of their devices can next fall
    silent. Over a random hour of readings with gaps, offline statuses, a broker outage and the
    published load-shedding windows, every instance must be as active as when every tick judges
    every device of every rule (the old way, emulated below). Seeds 6 and 8 end the hold after the
    reconnect with silences still firing: the heap must look at them when the hold ends. With `quiet`,
    the rooms' sensors and one uplink have a site-file max_quiet longer than the rules' limits."""
    from core.contract import DeviceKey, Reading
    from core.decode import StatusChange
    from core.site import iter_devices, load_site
    from rules.evaluate import Evaluator
    from tests.unit.rules.rules_harness import PACK, PARK

    site = load_site(PARK)
    if quiet:
        first, *rest = site.uplinks
        site = site.model_copy(update={
            "occupancy_sensors": tuple(o.model_copy(update={"max_quiet_s": 300.0}) for o in site.occupancy_sensors),
            "uplinks": (first.model_copy(update={"max_quiet_s": 200.0}), *rest)})
    pack = load_rule_files([PACK])
    start = local("2026-01-05 09:40")  # runs through the 10:00-11:00 window, open hours, occupancy
    lean = Evaluator(pack, {site.id: site}, start)
    thorough = Evaluator(pack, {site.id: site}, start)

    def tick_everything(ev: Evaluator, now: float) -> None:
        ev.on_tick(now)
        out: list = []
        for index, rule in enumerate(ev.rules):
            cond = rule.condition
            if cond.absence is not None and cond.absence.scope == "device":
                for key in list(ev._last_seen):
                    if ev._selects(rule, key):
                        ev._eval_absence_device(index, rule, key, now, out)
            elif cond.composite is not None:
                ev._term_counts.clear()
                for s in list(ev._site_keys):
                    ev._eval_composite(index, rule, s, now, out)
            elif cond.threshold is not None and (rule.active_when != "always" or rule.context.load_shedding
                                                  or rule.context.occupancy):
                for key in ev._keys_of(index):
                    if (reading := ev._latest.get(key)) is not None:
                        ev._eval_threshold(index, rule, key, reading, now, out)

    for ev in (lean, thorough):
        ev.set_source_connected(True, start)
    makers = {Kind.INVERTER: lambda r: inverter(soc=float(r.choice([4.0, 60.0])), grid_ok=bool(r.integers(2))),
              Kind.UPLINK: lambda r: uplink("PTCL", up=bool(r.integers(2))),
              Kind.OCCUPANCY: lambda r: occupancy("Lab", bool(r.integers(2)), int(r.integers(0, 5))),
              Kind.GENERATOR: lambda r: generator(str(r.choice(["off", "running"]))),
              Kind.PLUG: lambda r: plug(relay_on=bool(r.integers(2)))}
    keys = [DeviceKey(site.id, spec.kind, spec.id) for spec in iter_devices(site)]
    rng = np.random.default_rng(seed)
    silent = {key: False for key in keys}
    active_seen: set[str] = set()
    for second in range(3600):
        now = start + second
        if second == 1800:
            for ev in (lean, thorough):
                ev.set_source_connected(False, now)
        if second == 2000:
            for ev in (lean, thorough):
                ev.set_source_connected(True, now)
        if second % 60 == 0:  # now and then a device falls silent or speaks again
            for key in keys:
                if rng.random() < 0.15:
                    silent[key] = not silent[key]
        for key in keys:
            if silent[key] or rng.random() > 0.05:
                continue
            if rng.random() < 0.03:
                change = StatusChange(key, bool(rng.integers(2)))
                for ev in (lean, thorough):
                    ev.on_status(change, now)
                continue
            metrics = makers[key.kind](rng)
            if key.kind is Kind.UPLINK:
                metrics["isp"] = next(u.isp for u in site.uplinks if u.id == key.device)
            if key.kind is Kind.OCCUPANCY:
                metrics["room"] = next(o.room for o in site.occupancy_sensors if o.id == key.device)
            reading = Reading(key, int(now * 1000), second, metrics)
            for ev in (lean, thorough):
                ev.on_reading(reading, now)
        lean.on_tick(now)
        tick_everything(thorough, now)
        want = {k for k, inst in thorough._instances.items() if inst.active}
        got = {k for k, inst in lean._instances.items() if inst.active}
        assert got == want, (second, sorted(map(str, got - want)), sorted(map(str, want - got)))
        active_seen |= {lean.rules[i].name for (i, _), inst in lean._instances.items() if inst.active}
    assert {"DeviceSilent", "SitePowerLoss", "SiteOffline", "GridOutage", "FailoverActive"} <= active_seen


def test_rules_check_catches_typos_that_would_silence_a_page(tmp_path):
    """A misspelt severity reaches no route, a misspelt placeholder is sent as written, a misspelt
    label in an inhibition never matches: each is refused at its line, naming the rule."""
    bad = tmp_path / "typos.yaml"
    bad.write_text(
        "rules:\n"
        "  - name: GridDown\n"
        "    kind: inverter\n"
        "    condition: {threshold: {metric: grid_ok, op: '==', value: false}}\n"
        "    labels: {severity: critcal}\n"
        "  - name: Silent\n"
        "    kind: uplink\n"
        "    condition: {absence: {after_s: 5m}}\n"
        "    labels: {severity: warning}\n"
        "    annotations:\n"
        "      summary: '{devce} at {site} ({isp}) is silent'\n"
        "  - name: Shedding\n"
        "    kind: inverter\n"
        "    condition: {threshold: {metric: grid_ok, op: '==', value: false}}\n"
        "    labels: {severity: warning}\n"
        "    context:\n"
        "      load_shedding: {unscheduled: {severity: crit}}\n"
        "  - name: SiteDark\n"
        "    condition: {absence: {after_s: 5m, scope: site}}\n"
        "    annotations: {summary: 'device {device} is dark'}\n")
    problems = check_rule_files([bad])
    assert [p.split(": ")[:3] for p in problems] == [
        [f"{bad}:5", "rule GridDown", "labels.severity"],
        [f"{bad}:11", "rule Silent", "annotations.summary"],
        [f"{bad}:17", "rule Shedding", "context.load_shedding.unscheduled.severity"],
        [f"{bad}:20", "rule SiteDark", "annotations.summary"],
    ]
    assert "unknown severity 'critcal'; use one of critical, warning, info" in problems[0]
    assert "unknown placeholder {devce}" in problems[1] and "device" in problems[1].split("knows ")[1]
    assert "unknown placeholder {device}" in problems[3]  # a site-wide rule has no device to name
    inhibit = tmp_path / "inhibit.yaml"
    inhibit.write_text(
        "rules:\n"
        "  - name: GridDown\n"
        "    kind: inverter\n"
        "    condition: {threshold: {metric: grid_ok, op: '==', value: false}}\n"
        "    labels: {severity: critical, team: power}\n"
        "inhibit_rules:\n"
        "  - source: [alertname=GridDown, tema=power]\n"
        "    target: [alertname=UplinkDown]\n"
        "    equal: [stie]\n")
    assert check_rule_files([inhibit]) == [
        f"{inhibit}:7: inhibit_rules.0.source.1: no alert has a label 'tema', so this never matches; labels are "
        "alertname, device, instance, isp, kind, receiver, room, severity, site, team",
        f"{inhibit}:9: inhibit_rules.0.equal.0: no alert has a label 'stie', so this never matches; labels are "
        "alertname, device, instance, isp, kind, receiver, room, severity, site, team",
    ]


def test_the_shipped_pack_uses_only_known_placeholders_and_severities():
    from rules.service import DEFAULT_RULE_FILES

    assert check_rule_files(DEFAULT_RULE_FILES) == []


def test_rules_check_command_checks_the_configured_routes(tmp_path, capsys):
    """A route on `severity=critcal` would page nobody: `facmon rules check` (no files: the configured
    pack) says which route and why, and exits 1."""
    from facmon.cli import main

    config = tmp_path / "facmon.yaml"
    config.write_text(
        "rules:\n"
        "  receivers: [{name: oncall, webhooks: ['http://127.0.0.1:9/hook']}]\n"
        "  routes:\n"
        "    - {receiver: oncall, match: ['severity=critcal'], group_by: [site]}\n"
        "    - {receiver: oncall, match: ['romo=lobby'], group_by: [stie]}\n")
    assert main(["--config", str(config), "rules", "check"]) == 1
    err = capsys.readouterr().err
    assert "rules.routes.0.match.0 ('severity=critcal', receiver oncall): unknown severity 'critcal'" in err
    assert "rules.routes.1.match.0 ('romo=lobby', receiver oncall): no alert has a label 'romo'" in err
    assert "rules.routes.1.group_by.0 ('stie'): no alert has that label" in err
    config.write_text(config.read_text().replace("critcal", "critical").replace("romo", "room").replace("stie", "site"))
    assert main(["--config", str(config), "rules", "check"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
