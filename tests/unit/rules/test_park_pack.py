"""The shipped park pack keeps the 24/7 promise: occupancy may lower the severity of comfort matters
(rooms, after-hours presence), never of power to the network gear, battery run-out or the uplinks."""

from __future__ import annotations

from pathlib import Path

from rules.model import load_rule_files

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
