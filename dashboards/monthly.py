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

# --- ISP -----------------------------------------------------------------------------------------
AVAILABILITY = (f'SELECT last("availability_pct") FROM "report_isp_month" WHERE {UPLINK_WHERE} '
                'GROUP BY "site", "uplink", "isp"')
SLA_TABLE = ('SELECT "availability_pct", "sla_pct", "sla_met", "down_isp_min", "allowed_down_min", "outages" '
             f'FROM "report_isp_month" WHERE {UPLINK_WHERE} GROUP BY "site", "uplink", "isp"')
MINUTES_BY_CLASS = ("SELECT " + ", ".join(f'sum("{c}_min") AS "{c}"' for c in CLASSES) +
                    f' FROM "report_isp_day" WHERE {UPLINK_WHERE} GROUP BY "site", "uplink", "isp"')
DOWN_PER_DAY = ('SELECT "down_isp_min" AS "ISP", "down_power_min" AS "our power", "maintenance_min" AS "maintenance", '
                f'"unknown_min" AS "no data" FROM "report_isp_day" WHERE {UPLINK_WHERE} GROUP BY "site", "uplink"')
OUTAGES = ('SELECT "end", "duration_min", "cause", "loss_pct", "link_down_min", "power_out_min" '
           f'FROM "report_isp_outage" WHERE {UPLINK_WHERE} GROUP BY "site", "uplink", "isp"')

# --- energy and load-shedding ------------------------------------------------------------------
SOURCES_PER_DAY = ("SELECT " + ", ".join(f'"{s}_h" AS "{s.replace("_", " ")}"' for s in SOURCES) +
                   f' FROM "report_energy_day" WHERE {SITE_WHERE} GROUP BY "site"')
SHEDDING_PER_DAY = ('SELECT "shedding_scheduled_h" AS "scheduled", "shedding_unscheduled_h" AS "unscheduled" '
                    f'FROM "report_energy_day" WHERE {SITE_WHERE} GROUP BY "site"')
SHEDDING_TOTAL = ('SELECT sum("shedding_scheduled_h") AS "scheduled", sum("shedding_unscheduled_h") AS "unscheduled" '
                  f'FROM "report_energy_day" WHERE {SITE_WHERE} GROUP BY "site"')
ENERGY_PER_DAY = ('SELECT "pv_kwh" AS "PV", "battery_in_kwh" AS "battery in", "battery_out_kwh" AS "battery out", '
                  f'"generator_kwh" AS "generator" FROM "report_energy_day" WHERE {SITE_WHERE} GROUP BY "site"')
ENERGY_TOTAL = ('SELECT sum("pv_kwh") AS "PV", sum("battery_out_kwh") AS "battery out", '
                f'sum("generator_kwh") AS "generator", sum("fuel_l") AS "fuel (l)" FROM "report_energy_day" '
                f'WHERE {SITE_WHERE} GROUP BY "site"')
COST = ('SELECT sum("saved") AS "saved by solar", sum("grid_saved") AS "grid it replaced", '
        'sum("diesel_saved") AS "diesel it replaced", sum("diesel_cost") AS "diesel burnt" '
        f'FROM "report_energy_month" WHERE {SITE_WHERE} GROUP BY "site"')
COST_TABLE = ('SELECT "saved", "grid_saved", "diesel_saved", "diesel_cost", "diesel_l_per_kwh", "currency" '
              f'FROM "report_energy_month" WHERE {SITE_WHERE} GROUP BY "site"')

# --- battery health -------------------------------------------------------------------------------
CAPACITY_TREND = f'SELECT "capacity_ah" FROM "report_battery_week" WHERE {BATTERY_WHERE} GROUP BY "site", "battery"'
BATTERY_TABLE = ('SELECT "capacity_ah", "rated_ah", "capacity_pct", "below_alert", "cycles", "cell_delta_max_mv", '
                 f'"cell_delta_mean_mv" FROM "report_battery_month" WHERE {BATTERY_WHERE} GROUP BY "site", "battery"')
CYCLES = f'SELECT sum("cycles") FROM "report_battery_month" WHERE {BATTERY_WHERE} GROUP BY "site", "battery"'
DOD = ("SELECT " + ", ".join(f'sum("dod_{lo}_{lo + 10}") AS "{lo}-{lo + 10} %"' for lo in DOD_BINS) +
       f' FROM "report_battery_month" WHERE {BATTERY_WHERE} GROUP BY "site", "battery"')
CELL_SPREAD = ('SELECT "cell_delta_max_mv" AS "max", "cell_delta_mean_mv" AS "mean" FROM "report_battery_week" '
               f'WHERE {BATTERY_WHERE} GROUP BY "site", "battery"')


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
