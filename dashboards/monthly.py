"""Monthly: the monthly meeting's evidence (ISP availability with fault attribution, energy and
load-shedding, battery health), read from the figures the reports store in InfluxDB
(reports/store.py: `facmon report store`, and `facmon report serve` every day for the month so far).

InfluxQL cannot attribute a minute to a cause or count coulombs between state-of-charge points, so
no panel recomputes a report: each reads stored figures, summing day points over the picked range
(a month's day points sum to the month's figures) or listing month, week and outage points as they are.
The dashboard opens on last month.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import common

from core.contract import INVERTER_MODES
from dashboards.panels import (
    AMBER,
    BLUE,
    GREEN,
    RED,
    bar_gauge_panel,
    shared_dashboard,
    stat_panel,
    table_panel,
    table_target,
    tag_variable,
    target,
    thresholds,
    timeseries_panel,
)

UID = "facmon-monthly"
SITE_WHERE = '$timeFilter AND "site" =~ /^$site$/'
UPLINK_WHERE = f'{SITE_WHERE} AND "uplink" =~ /^$uplink$/'
BATTERY_WHERE = f'{SITE_WHERE} AND "battery" =~ /^$battery$/'
CLASSES = ("up", "down_isp", "down_power", "maintenance", "unknown")
SOURCES = (*INVERTER_MODES, "no_data")
"""The energy report's hours on each source (reports/energy.py: every mode of the contract) and without data."""
DOD_BINS = tuple(range(0, 100, 10))

BY_UPLINK = '"site", "uplink", "isp"'
BY_BATTERY = '"site", "battery"'


def _select(fields: str, measurement: str, where: str, by: str) -> str:
    return f'SELECT {fields} FROM "{measurement}" WHERE {where} GROUP BY {by}'


def _sums(columns: dict[str, str]) -> str:
    """`sum("field") AS "name"` for each name: field."""
    return ", ".join(f'sum("{field}") AS "{name}"' for name, field in columns.items())


def _renamed(columns: dict[str, str]) -> str:
    """`"field" AS "name"` for each name: field."""
    return ", ".join(f'"{field}" AS "{name}"' for name, field in columns.items())


# --- ISP -----------------------------------------------------------------------------------------
AVAILABILITY = _select('last("availability_pct")', "report_isp_month", UPLINK_WHERE, BY_UPLINK)
SLA_TABLE = _select('"availability_pct", "sla_pct", "sla_met", "down_isp_min", "allowed_down_min", "outages"',
                    "report_isp_month", UPLINK_WHERE, BY_UPLINK)
MINUTES_BY_CLASS = _select(_sums({c: f"{c}_min" for c in CLASSES}), "report_isp_day", UPLINK_WHERE, BY_UPLINK)
DOWN_PER_DAY = _select(_renamed({"ISP": "down_isp_min", "our power": "down_power_min", "maintenance": "maintenance_min",
                                 "no data": "unknown_min"}), "report_isp_day", UPLINK_WHERE, '"site", "uplink"')
OUTAGES = _select('"end", "duration_min", "cause", "loss_pct", "link_down_min", "power_out_min"', "report_isp_outage",
                  UPLINK_WHERE, BY_UPLINK)

# --- energy and load-shedding ------------------------------------------------------------------
SOURCES_PER_DAY = _select(_renamed({s.replace("_", " "): f"{s}_h" for s in SOURCES}), "report_energy_day", SITE_WHERE,
                          '"site"')
SHEDDING = {"scheduled": "shedding_scheduled_h", "unscheduled": "shedding_unscheduled_h"}
SHEDDING_PER_DAY = _select(_renamed(SHEDDING), "report_energy_day", SITE_WHERE, '"site"')
SHEDDING_TOTAL = _select(_sums(SHEDDING), "report_energy_day", SITE_WHERE, '"site"')
ENERGY_PER_DAY = _select(_renamed({"PV": "pv_kwh", "battery in": "battery_in_kwh", "battery out": "battery_out_kwh",
                                   "generator": "generator_kwh"}), "report_energy_day", SITE_WHERE, '"site"')
ENERGY_TOTAL = _select(_sums({"PV": "pv_kwh", "battery out": "battery_out_kwh", "generator": "generator_kwh",
                              "fuel (l)": "fuel_l"}), "report_energy_day", SITE_WHERE, '"site"')
COST = _select(_sums({"saved by solar": "saved", "grid it replaced": "grid_saved", "diesel it replaced": "diesel_saved",
                      "diesel burnt": "diesel_cost"}), "report_energy_month", SITE_WHERE, '"site"')
COST_TABLE = _select('"saved", "grid_saved", "diesel_saved", "diesel_cost", "diesel_l_per_kwh", "currency"',
                     "report_energy_month", SITE_WHERE, '"site"')

# --- battery health -------------------------------------------------------------------------------
CAPACITY_TREND = _select('"capacity_ah"', "report_battery_week", BATTERY_WHERE, BY_BATTERY)
BATTERY_TABLE = _select('"capacity_ah", "rated_ah", "capacity_pct", "below_alert", "cycles", "cell_delta_max_mv", '
                        '"cell_delta_mean_mv"', "report_battery_month", BATTERY_WHERE, BY_BATTERY)
CYCLES = _select('sum("cycles")', "report_battery_month", BATTERY_WHERE, BY_BATTERY)
DOD = _select(_sums({f"{lo}-{lo + 10} %": f"dod_{lo}_{lo + 10}" for lo in DOD_BINS}), "report_battery_month",
              BATTERY_WHERE, BY_BATTERY)
CELL_SPREAD = _select(_renamed({"max": "cell_delta_max_mv", "mean": "cell_delta_mean_mv"}), "report_battery_week",
                      BATTERY_WHERE, BY_BATTERY)


def _daily_bars(panel: timeseries.Panel) -> timeseries.Panel:
    return (panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
            .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)))


def _weekly_points(panel: timeseries.Panel) -> timeseries.Panel:
    """A point a week, joined: a week without a figure is skipped, not drawn as zero."""
    return (panel.draw_style(common.GraphDrawStyle.LINE).show_points(common.VisibilityMode.ALWAYS).point_size(6)
            .span_nulls(True))


def build(timezone: str) -> dashboard_builders.Dashboard:
    return (
        shared_dashboard(UID, "facmon — Monthly", "The monthly meeting: ISP availability with fault attribution "
                         "against the SLA, energy and load-shedding, battery health. Figures stored by the reports "
                         "(`facmon report store`, daily by `facmon report serve`).", timezone, "now-1M/M",
                         ["reports"])
        .time("now-1M/M", "now-1M/M").refresh("1h")
        .with_variable(tag_variable("uplink", "Uplink", "report_isp_month"))
        .with_variable(tag_variable("battery", "Battery", "report_battery_month"))
        .with_panel(stat_panel("ISP availability (up / (up + ISP down))",
                               [target(AVAILABILITY, alias="$tag_isp ($tag_uplink)")], "percent", 8, 6).decimals(3)
                    .thresholds(thresholds((None, RED), (99, AMBER), (99.5, GREEN))))
        .with_panel(table_panel("Availability against the SLA, per month", [table_target(SLA_TABLE)], 16, 6))
        .with_panel(table_panel("Minutes by class", [table_target(MINUTES_BY_CLASS)], 24, 5))
        .with_panel(_daily_bars(timeseries_panel("Minutes down per day, by cause",
                                                 [target(DOWN_PER_DAY, alias="$tag_uplink $col")], "m", 24)))
        .with_panel(table_panel("Outages (start, end, cause, evidence)", [table_target(OUTAGES)], 24, 8))
        .with_panel(_daily_bars(timeseries_panel("Hours on each source per day",
                                                 [target(SOURCES_PER_DAY, alias="$col")], "h", 24)))
        .with_panel(_daily_bars(timeseries_panel("Load-shedding per day: scheduled vs unscheduled",
                                                 [target(SHEDDING_PER_DAY, alias="$col")], "h", 16)))
        .with_panel(stat_panel("Load-shedding over the range", [target(SHEDDING_TOTAL, alias="$col")], "h", 8, 8)
                    .thresholds(thresholds((None, AMBER))))
        .with_panel(timeseries_panel("Energy per day", [target(ENERGY_PER_DAY, alias="$col")], "kwatth", 16)
                    .draw_style(common.GraphDrawStyle.BARS).fill_opacity(60))
        .with_panel(stat_panel("Energy over the range (kWh; fuel in litres)", [target(ENERGY_TOTAL, alias="$col")],
                               "none", 8, 8).decimals(1).thresholds(thresholds((None, GREEN))))
        .with_panel(stat_panel("Cost saved by solar (estimate, the site's currency)", [target(COST, alias="$col")],
                               "none", 24, 4).decimals(0).thresholds(thresholds((None, GREEN))))
        .with_panel(table_panel("Costs per month", [table_target(COST_TABLE)], 24, 4))
        .with_panel(_weekly_points(timeseries_panel("Battery capacity by week (coulomb counting)",
                                                    [target(CAPACITY_TREND, alias="$tag_battery")], "none", 16)))
        .with_panel(stat_panel("Equivalent full cycles", [target(CYCLES, alias="$tag_battery")], "none", 8, 8)
                    .decimals(1).thresholds(thresholds((None, BLUE))))
        .with_panel(table_panel("Battery health per month", [table_target(BATTERY_TABLE)], 24, 5))
        .with_panel(bar_gauge_panel("Depth of discharge (discharges)", [target(DOD, alias="$tag_battery $col")],
                                    "none", 12, 9))
        .with_panel(_weekly_points(timeseries_panel("Cell spread by week (max − min cell voltage)",
                                                    [target(CELL_SPREAD, alias="$tag_battery $col")], "mvolt", 12,
                                                    9)))
    )
