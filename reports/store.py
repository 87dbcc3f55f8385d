"""The reports' figures kept in InfluxDB, for the Grafana "Monthly" dashboard (docs/dashboards.md).

What InfluxQL cannot compute (minutes attributed to a cause, capacity by coulomb counting, cycles)
is computed once by the reports and stored as points, tagged by site and uplink or battery:

    measurement            tags               time                 fields
    report_isp_month       site, uplink, isp  the month's start    availability_pct, sla_pct, sla_met,
                                                                   <class>_min, allowed_down_min, outages
    report_isp_day         site, uplink, isp  each local midnight  <class>_min
    report_isp_outage      site, uplink, isp  each outage's start  end, duration_min, cause, loss_pct,
                                                                   link_down_min, power_out_min
    report_energy_day      site               each local midnight  <mode>_h, no_data_h, shedding_scheduled_h,
                                                                   shedding_unscheduled_h, pv_kwh, battery_in_kwh,
                                                                   battery_out_kwh, generator_run_h, fuel_l,
                                                                   generator_kwh
    report_energy_month    site               the month's start    the month's sums of those, and with tariffs
                                                                   saved, grid_saved, diesel_saved, diesel_cost,
                                                                   diesel_l_per_kwh, currency
    report_battery_month   site, battery      the month's start    rated_ah, capacity_ah, capacity_pct, below_alert,
                                                                   cycles, dod_<lo>_<hi>, cell_delta_*_mv
    report_battery_week    site, battery      each week's start    capacity_ah, sag_v_at_100a, cell_delta_*_mv

(<class>: up, down_isp, down_power, maintenance, unknown; <mode>: the inverter modes of the contract;
a week starts on the 1st, 8th, 15th, 22nd and 29th, the report's weeks). A figure the report could
not judge is left out of its point (InfluxDB has no null).

Storing a month replaces it: the month's points of the site are deleted, then written again. The
same month gives the same timestamps and tags, so a re-run overwrites and never adds, and an outage
that a later run no longer finds (data that arrived late) does not linger.

    points = month_points(uplinks, energy_doc, battery_doc, site, month)     pure
    store_month(client, writer, site, month)                                 read, compute, replace
    MonthStore(client, writer, clock).store(site, "2026-11")                 `facmon report store`
    schedule_daily_stores(scheduler, store, sites)                           `facmon report serve`: daily,
                                                                             the month holding yesterday
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from apscheduler.triggers.cron import CronTrigger

from core.clock import Clock
from core.influx_write import InfluxWriteError, LineWriter
from core.influxql import InfluxError, InfluxQLClient, quote_ident, quote_string
from core.line_protocol import escape_string_field, escape_tag
from core.site import Site
from reports.battery import battery_report
from reports.document import ReportDocument
from reports.energy import energy_report
from reports.isp import UplinkMonth, read_inputs, uplink_months
from reports.month import WEEK_S, ReportMonth
from reports.schedule import schedule_per_site
from reports.source import ReportSource

log = logging.getLogger("facmon.reports")
MEASUREMENTS = ("report_isp_month", "report_isp_day", "report_isp_outage", "report_energy_day",
                "report_energy_month", "report_battery_month", "report_battery_week")
LINES_PER_WRITE = 5_000

Field = float | int | bool | str | None


def _field(value: Field) -> str:
    # numpy's scalars too: np.bool_ is no bool, np.int64 no int, and np.float64's repr is not a number.
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return f"{int(value)}i"
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return escape_string_field(str(value))


def point(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Field], at_s: int) -> str | None:
    """One line of line protocol; fields that are None (not judged) are left out, and a point
    without any field is None."""
    written = ",".join(f"{escape_tag(name)}={_field(value)}" for name, value in fields.items()
                       if value is not None and not (isinstance(value, numbers.Real) and value != value))
    if not written:
        return None
    tag_text = ",".join(f"{escape_tag(name)}={escape_tag(value)}" for name, value in sorted(tags.items()) if value)
    return f"{measurement},{tag_text} {written} {at_s * 1_000_000_000}"


def isp_points(uplinks: Sequence[UplinkMonth], site: Site, month: ReportMonth) -> list[str]:
    """report_isp_month, report_isp_day and report_isp_outage from the ISP report's uplink months."""
    lines: list[str | None] = []
    days = month.day_starts_s
    for result in uplinks:
        uplink = result.uplink
        tags = {"site": site.id, "uplink": uplink.id, "isp": uplink.isp}
        lines.append(point("report_isp_month", tags, {
            "availability_pct": result.availability_pct, "sla_pct": uplink.sla_pct, "sla_met": result.sla_met,
            **{f"{c.name.lower()}_min": count for c, count in result.minutes.items()},
            "allowed_down_min": result.allowed_down_min, "outages": len(result.outages)}, month.start_s))
        for index, at in enumerate(days):
            lines.append(point("report_isp_day", tags, {f"{c.name.lower()}_min": int(counts[index])
                                                        for c, counts in result.per_day.items()}, at))
        for outage in result.outages:
            lines.append(point("report_isp_outage", tags, {
                "end": f"{month.local(outage.end_minute):%Y-%m-%d %H:%M}", "duration_min": outage.duration_min,
                "cause": outage.cause.name.lower(), "loss_pct": outage.loss_pct,
                "link_down_min": outage.link_down_min, "power_out_min": outage.power_out_min},
                month.epoch_of(outage.start_minute)))
    return [line for line in lines if line]


def _hours_field(name: str) -> str:
    return name.removesuffix("_min") + "_h"


def energy_points(doc: ReportDocument, site: Site, month: ReportMonth) -> list[str]:
    """report_energy_day and report_energy_month from the energy report (hours from its minutes)."""
    daily: Mapping[str, Sequence[float]] = doc.figures["daily"]
    tags = {"site": site.id}
    lines: list[str | None] = []
    for index, at in enumerate(month.day_starts_s):
        lines.append(point("report_energy_day", tags, {
            (_hours_field(name) if name.endswith("_min") else name): (
                values[index] / 60 if name.endswith("_min") else values[index]) for name, values in daily.items()}, at))
    totals: dict[str, Field] = {(_hours_field(name) if name.endswith("_min") else name): (
        sum(values) / 60 if name.endswith("_min") else float(sum(values))) for name, values in daily.items()}
    for name in ("saved", "grid_saved", "diesel_saved", "diesel_cost", "diesel_l_per_kwh", "currency"):
        totals[name] = doc.figures.get(name)
    lines.append(point("report_energy_month", tags, totals, month.start_s))
    return [line for line in lines if line]


def battery_points(doc: ReportDocument, site: Site, month: ReportMonth) -> list[str]:
    """report_battery_month and report_battery_week from the battery report."""
    lines: list[str | None] = []
    for inverter in site.inverters:
        figures: Mapping[str, Any] = doc.figures.get(inverter.id) or {}
        if not figures:
            continue
        tags = {"site": site.id, "battery": inverter.id}
        histogram = {f"dod_{lo}_{lo + 10}": count for lo, count in zip(range(0, 100, 10), figures["dod_histogram"],
                                                                       strict=True)}
        cells = figures.get("cell_spread") or {}
        lines.append(point("report_battery_month", tags, {
            "rated_ah": figures["rated_ah"], "capacity_ah": figures["capacity_ah"],
            "capacity_pct": figures["capacity_pct"], "below_alert": figures["below_alert"], "cycles": figures["cycles"],
            **histogram, "cell_delta_max_mv": cells.get("max_mv"), "cell_delta_mean_mv": cells.get("mean_mv"),
            "cell_delta_trend_mv_per_week": cells.get("trend_mv_per_week")}, month.start_s))
        weekly_cells = cells.get("weekly") or []
        for week, (capacity, sag) in enumerate(zip(figures["weekly_capacity_ah"], figures["weekly_sag_v_at_100a"],
                                                   strict=True)):
            spread = weekly_cells[week] if week < len(weekly_cells) else {}
            lines.append(point("report_battery_week", tags, {
                "capacity_ah": capacity, "sag_v_at_100a": sag, "cell_delta_max_mv": spread.get("max_mv"),
                "cell_delta_mean_mv": spread.get("mean_mv")}, month.start_s + week * WEEK_S))
    return [line for line in lines if line]


def month_points(isp: Sequence[UplinkMonth], energy: ReportDocument, battery: ReportDocument, site: Site,
                 month: ReportMonth) -> list[str]:
    """Every point of `site`'s month, from its three reports (the ISP report's uplink months)."""
    return isp_points(isp, site, month) + energy_points(energy, site, month) + battery_points(battery, site, month)


def delete_statement(site_id: str, month: ReportMonth) -> str:
    """Remove what was stored for the calendar month (every point lies within it; so does each week's start)."""
    whole = ReportMonth.parse(str(month), month.tz)
    span = f"time >= {whole.start_s}s AND time < {whole.end_s}s"
    return ";".join(f"DELETE FROM {quote_ident(m)} WHERE site = {quote_string(site_id)} AND {span}"
                    for m in MEASUREMENTS)


def store_month(client: InfluxQLClient, writer: LineWriter, site: Site, month: ReportMonth) -> int:
    """Compute `site`'s three reports for `month` and replace the month's stored points with theirs;
    returns the number of points written. Nothing is deleted when a report cannot be built (raises
    core.influxql's InfluxError); a failed write raises core.influx_write's InfluxWriteError, and
    running it again repairs the month."""
    source = ReportSource(client, site.id, month)
    lines = month_points(uplink_months(site, month, read_inputs(source, site)), energy_report(source, site),
                         battery_report(source, site), site, month)
    client.execute(delete_statement(site.id, month))
    for chunk in range(0, len(lines), LINES_PER_WRITE):
        writer.write(lines[chunk:chunk + LINES_PER_WRITE])
    return len(lines)


STORE_HOUR, STORE_MINUTE = 0, 30
"""The daily store runs at 00:30 in the site's zone: the day just ended is complete, and the collector
has had half an hour to write what it held back."""


class MonthStore:
    """Stores sites' months through `client` (reads, DELETE) and `writer` (points); `clock` says which
    day it is. `facmon report store` calls `store`; `facmon report serve` runs `store_month_of_yesterday`
    every day."""

    def __init__(self, client: InfluxQLClient, writer: LineWriter, clock: Clock) -> None:
        self.client, self.writer, self.clock = client, writer, clock

    def store(self, site: Site, month: str) -> tuple[ReportMonth, int]:
        """`month` ('YYYY-MM') through the last complete local day (all of it once it has ended); the
        month stored and the points written. Raises BadMonth (malformed, or no day of it is over yet),
        InfluxError, InfluxWriteError."""
        today = datetime.fromtimestamp(self.clock.now(), site.tz).date()
        report_month = ReportMonth.so_far(month, site.tz, today)
        return report_month, store_month(self.client, self.writer, site, report_month)

    def store_month_of_yesterday(self, site: Site) -> None:
        """The daily job: the month holding yesterday (on the 1st, the month just ended, whole). A
        failure is logged, and the next day's run repairs the month."""
        month = month_of_yesterday(self.clock.now(), site.tz)
        try:
            stored, count = self.store(site, month)
        except (InfluxError, InfluxWriteError) as err:
            log.warning("event=report_store_failed site=%s month=%s error=%s", site.id, month, err)
            return
        log.info("event=report_stored site=%s month=%s through=%s points=%d", site.id, month,
                 stored.days[-1].isoformat(), count)


def month_of_yesterday(epoch_s: float, tz: ZoneInfo) -> str:
    """'YYYY-MM' of the local day before the one holding `epoch_s` in `tz`: on the 1st, last month."""
    yesterday = datetime.fromtimestamp(epoch_s, tz).date() - timedelta(days=1)
    return f"{yesterday.year:04d}-{yesterday.month:02d}"


def daily_store_trigger(site: Site) -> CronTrigger:
    return CronTrigger(hour=STORE_HOUR, minute=STORE_MINUTE, timezone=site.tz)


def schedule_daily_stores(scheduler: Any, store: MonthStore, sites: Sequence[Site]) -> None:
    """One cron job per site on an APScheduler 3.x scheduler (started by the caller)."""
    schedule_per_site(scheduler, store.store_month_of_yesterday, daily_store_trigger, sites, "report-store",
                      "monthly figures of {site} into InfluxDB")
