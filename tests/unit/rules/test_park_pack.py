"""The shipped park pack keeps the 24/7 promise: occupancy may lower the severity of comfort matters
(rooms, after-hours presence), never of power to the network gear, battery run-out or the uplinks."""

from __future__ import annotations

from pathlib import Path

from core.contract import Kind
from rules.model import load_rule_files
from tests.unit.rules.rules_harness import Harness, all_devices_reporting, inverter, local

PARK = Path(__file__).resolve().parents[3] / "rules" / "packs" / "park.yaml"
ORDER = {"critical": 0, "warning": 1, "info": 2, "none": 3}


def test_occupancy_never_lowers_power_battery_or_uplink_severity():
    pack = load_rule_files([PARK])
    guarded = [r for r in pack.rules if r.labels.get("team") in ("power", "network")]
    assert {r.name for r in guarded} >= {"GridOutage", "BatteryLow", "BatteryRunoutPredicted", "SitePowerLoss",
                                          "UplinkDown", "SiteOffline"}
    for rule in guarded:
        for override in (rule.context.occupancy or {}).values():
            lowered = ORDER.get(override.get("severity", rule.labels["severity"]), 3) > ORDER[rule.labels["severity"]]
            assert not lowered, f"{rule.name}: occupancy lowers its severity to {override['severity']}"


def test_battery_run_out_and_low_page_whoever_is_in_the_building():
    rules = {r.name: r for r in load_rule_files([PARK]).rules}
    assert rules["BatteryRunoutPredicted"].labels["severity"] == "critical"
    assert rules["BatteryLow"].labels["severity"] == "critical" and rules["BatteryLow"].context.occupancy is None
    assert rules["GridOutage"].context.occupancy is None


def test_cell_imbalance_warns_after_half_an_hour_above_100_mv_and_clears_below_80(tmp_path: Path) -> None:
    h = Harness(tmp_path, local("2026-01-05 10:00"))
    others = all_devices_reporting(h)
    wide = {**others, (Kind.INVERTER, "inv-main"): inverter(cell_v_min=3.25, cell_v_max=3.37, cell_v_delta_mv=120.0)}
    h.run(30 * 60, step=60, every=wide)
    assert h.state("BatteryCellImbalance", "inv-main") == "pending"
    h.run(31 * 60, step=60, every=wide)
    assert h.state("BatteryCellImbalance", "inv-main") == "firing"
    assert h.state("BatteryCellImbalance", "inv-lab") == "inactive"  # reports no cells: never judged
    narrow = {**others, (Kind.INVERTER, "inv-main"): inverter(cell_v_delta_mv=90.0)}
    h.run(60 * 60, step=60, every=narrow)
    assert h.state("BatteryCellImbalance", "inv-main") == "firing"  # 90 mV: above the 80 mV that clears it
    fine = {**others, (Kind.INVERTER, "inv-main"): inverter(cell_v_delta_mv=40.0)}
    h.run(35 * 60, step=60, every=fine)
    assert h.state("BatteryCellImbalance", "inv-main") in ("resolved", "inactive")
