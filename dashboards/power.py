"""Power: when the grid was out, how the battery and the generator coped, where the energy came from."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import common

from dashboards.panels import (
    AMBER,
    GENERATOR_STATE,
    GREEN,
    GRID_OK,
    POWER_SOURCE,
    RED,
    RELAY_ON,
    shared_dashboard,
    state_timeline_panel,
    tag_variable,
    target,
    thresholds,
    timeseries_panel,
)

UID = "facmon-power"
WHERE = '$timeFilter AND "site" =~ /^$site$/ AND "device" =~ /^$device$/'

GRID_TIMELINE = f'SELECT last("grid_ok") FROM "inverter" WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)'
MODE_TIMELINE = f'SELECT last("mode") FROM "inverter" WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)'
SOC = f'SELECT mean("battery_soc_pct") FROM "inverter" WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)'
PV_W = f'SELECT mean("pv_w") FROM "inverter" WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)'
LOAD_W = f'SELECT mean("load_w") FROM "inverter" WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)'
BATTERY_W = (
    'SELECT mean("battery_w") FROM (SELECT "battery_v" * "battery_a" AS "battery_w" FROM "inverter" '
    f'WHERE {WHERE}) WHERE $timeFilter GROUP BY time($__interval), "device" fill(null)')

# Energy per local day, kWh. Battery power p = V·A is positive while charging; discharge is
# max(-p, 0) = (|p| - p) / 2. The grid supplies what the load takes beyond solar and battery
# (inverter losses included; the clamp keeps battery-only periods near zero): max(load + p - pv, 0).
# integral() integrates each device's own points.
_DAY = "GROUP BY time(1d), \"device\" tz('{tz}')"
ENERGY_SOLAR = f'SELECT integral("pv_w", 1h) / 1000 FROM "inverter" WHERE {WHERE} ' + _DAY
ENERGY_BATTERY = (
    'SELECT integral("discharge_w", 1h) / 1000 FROM (SELECT (abs("battery_v" * "battery_a") - "battery_v" * '
    f'"battery_a") / 2 AS "discharge_w" FROM "inverter" WHERE {WHERE}) WHERE $timeFilter ' + _DAY)
ENERGY_GRID = (
    'SELECT integral("grid_w", 1h) / 1000 FROM (SELECT ("load_w" + "battery_v" * "battery_a" - "pv_w" + '
    'abs("load_w" + "battery_v" * "battery_a" - "pv_w")) / 2 AS "grid_w" FROM "inverter" '
    f'WHERE {WHERE}) WHERE $timeFilter ' + _DAY)
TEMPERATURES = (f'SELECT mean("inverter_temp_c") AS "inverter", mean("battery_temp_c") AS "battery" FROM "inverter" '
                f'WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)')
FAULTS = f'SELECT count("fault_code") FROM "inverter" WHERE {WHERE} GROUP BY time($__interval), "device" fill(0)'

# Generators: the `device` variable lists inverters, so their panels select by site only.
GEN_WHERE = '$timeFilter AND "site" =~ /^$site$/'
GENERATOR_STATE_TIMELINE = (f'SELECT last("state") FROM "generator" WHERE {GEN_WHERE} '
                            'GROUP BY time($__interval), "device" fill(null)')
GENERATOR_OUTPUT_W = (f'SELECT mean("output_w") FROM "generator" WHERE {GEN_WHERE} '
                      'GROUP BY time($__interval), "device" fill(null)')
GENERATOR_FUEL = (f'SELECT last("fuel_pct") FROM "generator" WHERE {GEN_WHERE} '
                  'GROUP BY time($__interval), "device" fill(null)')
GENERATOR_HOURS_PER_DAY = f'SELECT spread("engine_hours") FROM "generator" WHERE {GEN_WHERE} ' + _DAY

# Plugs (the router's, a pump's): selected by site, like the generators. A plug without power sends
# nothing, so its gaps are its outages.
PLUG_RELAY_TIMELINE = (f'SELECT last("relay_on") FROM "plug" WHERE {GEN_WHERE} '
                       'GROUP BY time($__interval), "device" fill(null)')
PLUG_POWER_W = f'SELECT mean("power_w") FROM "plug" WHERE {GEN_WHERE} GROUP BY time($__interval), "device" fill(null)'


def build(timezone: str) -> dashboard_builders.Dashboard:
    energy_by_day = [q.format(tz=timezone) for q in (ENERGY_SOLAR, ENERGY_BATTERY, ENERGY_GRID)]
    return (
        shared_dashboard(UID, "facmon — Power", "Grid outages, battery, solar and load per inverter.",
                         timezone, "now-2d", ["power"])
        .with_variable(tag_variable("device", "Inverter", "inverter"))
        .with_panel(state_timeline_panel("Grid availability (red bands: outages)",
                                         [target(GRID_TIMELINE, alias="$tag_device")], GRID_OK, 24, 5))
        .with_panel(state_timeline_panel("Power source", [target(MODE_TIMELINE, alias="$tag_device")],
                                         POWER_SOURCE, 24, 5))
        .with_panel(timeseries_panel("Battery state of charge", [target(SOC, alias="$tag_device")], "percent")
                    .min(0).max(100).thresholds(thresholds((None, RED), (20, AMBER), (50, GREEN))))
        .with_panel(timeseries_panel("Solar, load and battery power (battery: + charging, − discharging)", [
            target(PV_W, "A", "solar $tag_device"), target(LOAD_W, "B", "load $tag_device"),
            target(BATTERY_W, "C", "battery $tag_device")], "watt"))
        .with_panel(timeseries_panel("Energy per day by source", [
            target(energy_by_day[0], "A", "solar $tag_device"), target(energy_by_day[1], "B", "battery $tag_device"),
            target(energy_by_day[2], "C", "grid or generator $tag_device")], "kwatth", 24)
                    .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
                    .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)))
        .with_panel(timeseries_panel("Temperatures", [target(TEMPERATURES, alias="$tag_device $col")], "celsius")
                    .thresholds(thresholds((None, GREEN), (50, AMBER), (65, RED))))
        .with_panel(timeseries_panel("Inverter faults (readings with a fault code)",
                                     [target(FAULTS, alias="$tag_device")], "none")
                    .thresholds(thresholds((None, GREEN), (1, RED))))
        .with_panel(state_timeline_panel("Generator (red: failed to start)",
                                         [target(GENERATOR_STATE_TIMELINE, alias="$tag_device")], GENERATOR_STATE,
                                         24, 5))
        .with_panel(timeseries_panel("Generator output", [target(GENERATOR_OUTPUT_W, alias="$tag_device")], "watt"))
        .with_panel(timeseries_panel("Generator fuel", [target(GENERATOR_FUEL, alias="$tag_device")], "percent")
                    .min(0).max(100).thresholds(thresholds((None, RED), (20, AMBER), (40, GREEN))))
        .with_panel(timeseries_panel("Generator run hours per day",
                                     [target(GENERATOR_HOURS_PER_DAY.format(tz=timezone), alias="$tag_device")], "h",
                                     24)
                    .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80))
        .with_panel(state_timeline_panel("Plugs (red: switched off; gaps: the plug had no power)",
                                         [target(PLUG_RELAY_TIMELINE, alias="$tag_device")], RELAY_ON, 24, 4))
        .with_panel(timeseries_panel("Load on each plug", [target(PLUG_POWER_W, alias="$tag_device")], "watt", 24))
    )
