"""Park overview: one glance per site each morning — what powers it, how long the battery lasts,
whether the internet is up, how full the rooms are, and what is on fire."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.models import dashboard as model

from dashboards.panels import (
    ALERTS_MEASUREMENT,
    AMBER,
    GREEN,
    POWER_SOURCE,
    RED,
    UP_DOWN,
    shared_dashboard,
    stat_panel,
    table_panel,
    table_target,
    target,
    thresholds,
)

UID = "facmon-overview"
SITE = '"site" =~ /^$site$/'

POWER_SOURCE_NOW = f'SELECT last("mode") FROM "inverter" WHERE $timeFilter AND {SITE} GROUP BY "site", "device"'
SOC_NOW = f'SELECT last("battery_soc_pct") FROM "inverter" WHERE $timeFilter AND {SITE} GROUP BY "site", "device"'
RUNTIME_WINDOW_H = 0.5
RUNTIME_EPSILON_PCT = 1e-6
"""Written as 0.000001 in the query: InfluxQL would read `1e-06` as a malformed duration."""
NOT_DISCHARGING_ABOVE_H = 1000
RUNTIME_NOW = (
    # Runtime at the recent discharge rate: SoC now / (SoC lost per hour over the last 30 min).
    # InfluxQL answers 0 for x / 0, which would read "empty" for a battery that is merely idle, so
    # the denominator gets a negligible epsilon: an idle battery comes out huge, a charging one
    # negative, and both are mapped to "not discharging"; an empty idle battery stays 0 h.
    f'SELECT last("battery_soc_pct") * {RUNTIME_WINDOW_H} / '
    f'(first("battery_soc_pct") - last("battery_soc_pct") + {RUNTIME_EPSILON_PCT:.6f}) '
    f'FROM "inverter" WHERE $timeFilter AND {SITE} GROUP BY "site", "device"')
UPLINKS_NOW = f'SELECT last("link_up") FROM "uplink" WHERE $timeFilter AND {SITE} GROUP BY "site", "isp"'
ROOMS_OCCUPIED_NOW = (
    'SELECT count("occupied") FROM (SELECT last("occupied") AS "occupied" FROM "occupancy" '
    f'WHERE $timeFilter AND {SITE} GROUP BY "site", "room") WHERE "occupied" = true')
PEOPLE_NOW = f'SELECT last("people") FROM "occupancy" WHERE $timeFilter AND {SITE} GROUP BY "site", "room"'
ACTIVE_ALERTS = (
    'SELECT count("text") FROM (SELECT last("text") AS "text", "state" FROM "facmon_alerts" '
    f"WHERE $timeFilter AND {SITE} GROUP BY \"site\", \"alertname\") WHERE \"state\" = 'firing'")
ALERTS_NOW = (
    f'SELECT last("text") AS "text", "state", "severity" FROM "{ALERTS_MEASUREMENT}" '
    f'WHERE $timeFilter AND {SITE} GROUP BY "site", "alertname"')


def build(timezone: str) -> dashboard_builders.Dashboard:
    runtime = stat_panel("Battery runtime at current drain", [target(RUNTIME_NOW, alias="$tag_device")], "h", 6)
    runtime.thresholds(thresholds((None, RED), (1, AMBER), (3, GREEN))).time_from("30m").hide_time_override(True)
    runtime.decimals(1).no_value("not discharging")
    not_discharging = model.ValueMappingResult(text="not discharging", color=GREEN, index=0)
    runtime.mappings([
        model.RangeMap(options=model.DashboardRangeMapOptions(from_val=-1e15, to=-1e-9, result=not_discharging)),
        model.RangeMap(options=model.DashboardRangeMapOptions(from_val=NOT_DISCHARGING_ABOVE_H, to=1e15,
                                                              result=not_discharging)),
    ])
    return (
        shared_dashboard(UID, "facmon — Park overview",
                         "Per site, right now: power source, battery, uplinks, rooms, active alerts. "
                         "Green is fine, amber is running on reserve, red needs action.", timezone, "now-6h",
                         ["overview"])
        .with_panel(stat_panel("Power source now", [target(POWER_SOURCE_NOW, alias="$tag_site $tag_device")],
                               "none", 6).mappings(POWER_SOURCE))
        .with_panel(stat_panel("Battery state of charge", [target(SOC_NOW, alias="$tag_device")], "percent", 6)
                    .min(0).max(100).thresholds(thresholds((None, RED), (20, AMBER), (50, GREEN))))
        .with_panel(runtime)
        .with_panel(stat_panel("Active alerts", [target(ACTIVE_ALERTS, alias="firing")], "none", 6)
                    .no_value("0").thresholds(thresholds((None, GREEN), (1, RED))))
        .with_panel(stat_panel("Uplinks", [target(UPLINKS_NOW, alias="$tag_isp")], "none", 8).mappings(UP_DOWN))
        .with_panel(stat_panel("Rooms occupied now", [target(ROOMS_OCCUPIED_NOW, alias="rooms")], "none", 8)
                    .no_value("0").thresholds(thresholds((None, "blue"))))
        .with_panel(stat_panel("People now", [target(PEOPLE_NOW, alias="$tag_room")], "none", 8)
                    .thresholds(thresholds((None, "blue"))))
        .with_panel(table_panel("Alerts: latest state of each", [table_target(ALERTS_NOW)]))
    )
