"""ISP availability with fault attribution: every minute of the month of every uplink is one of

    up            fewer than half of the minute's usual readings lost more than half of their probes
    down_isp      at least half of them did, the router had power, no maintenance was announced
    down_power    no answers, and the router's inverter had no output in that minute or in the
                  ROUTER_BOOT_MIN minutes before (the router was off, or still booting)
    maintenance   no answers within a maintenance window the ISP announced (site file)
    unknown       facmon has no reading of the uplink in that minute, or it was down and facmon has
                  no reading of the router's inverter to tell whose fault it was

Availability counts only what the ISP answers for: up / (up + down_isp). Our power, announced
maintenance and facmon's own gaps are neither up nor down; the report lists them apart.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

import numpy as np

from core.site import Site, Uplink
from reports.document import Chart, ReportDocument, Table
from reports.month import ReportMonth
from reports.source import ReportSource, all_missing, minute_mask, minute_values

DOWN_LOSS_PCT = 50.0
"""A reading fails when it lost more than this share of its probes; a minute is down when at least
half of the uplink's usual readings a minute failed in it."""
ROUTER_BOOT_MIN = 2
"""Minutes a router needs after its power returns before its link is up again."""


class MinuteClass(enum.IntEnum):
    UP = 0
    DOWN_ISP = 1
    DOWN_POWER = 2
    MAINTENANCE = 3
    UNKNOWN = 4


CAUSES = {MinuteClass.DOWN_ISP: "ISP", MinuteClass.DOWN_POWER: "our power", MinuteClass.MAINTENANCE: "maintenance"}


@dataclass(frozen=True)
class UplinkMinutes:
    """What the data says about one uplink, minute by minute (arrays of the month's length)."""

    down: np.ndarray
    missing: np.ndarray
    loss_pct: np.ndarray
    """Mean probe loss of the minute's failing readings (nan where none failed)."""
    link_down: np.ndarray
    """A reading in the minute said the interface had no carrier."""
    maintenance: np.ndarray
    power_out: np.ndarray | None
    """The router's inverter delivered no power in the minute; None: the router has its own supply."""
    power_missing: np.ndarray | None


@dataclass(frozen=True)
class Outage:
    start_minute: int
    end_minute: int
    """Exclusive."""
    cause: MinuteClass
    loss_pct: float
    link_down_min: int
    power_out_min: int

    @property
    def duration_min(self) -> int:
        return self.end_minute - self.start_minute


def classify(m: UplinkMinutes) -> np.ndarray:
    """Each minute's `MinuteClass` (int8 array), by the rules of the module docstring."""
    classes = np.full(m.down.shape, MinuteClass.UP, dtype=np.int8)
    down = m.down & ~m.missing
    classes[down] = MinuteClass.DOWN_ISP
    if m.power_out is not None and m.power_missing is not None:
        recently_out = m.power_out.copy()
        for lag in range(1, ROUTER_BOOT_MIN + 1):
            recently_out[lag:] |= m.power_out[:-lag]
        classes[down & m.power_missing & ~recently_out] = MinuteClass.UNKNOWN
        classes[down & recently_out] = MinuteClass.DOWN_POWER
    classes[down & m.maintenance] = MinuteClass.MAINTENANCE
    classes[m.missing] = MinuteClass.UNKNOWN
    return classes


def outages(classes: np.ndarray, m: UplinkMinutes) -> list[Outage]:
    """Runs of consecutive down minutes of one cause (an outage whose cause changes is two)."""
    found: list[Outage] = []
    is_down = np.isin(classes, list(CAUSES))
    edges = np.flatnonzero(np.diff(np.concatenate(([-1], np.where(is_down, classes, -1), [-1]))))
    for start, end in itertools.pairwise(edges):
        if not is_down[start]:
            continue
        span = slice(start, end)
        power = 0 if m.power_out is None else int(m.power_out[span].sum())
        found.append(Outage(int(start), int(end), MinuteClass(int(classes[start])),
                            float(np.nanmean(m.loss_pct[span])), int(m.link_down[span].sum()), power))
    return found


@dataclass(frozen=True)
class UplinkMonth:
    uplink: Uplink
    minutes: dict[MinuteClass, int]
    availability_pct: float | None
    """up / (up + down_isp) in percent; None when no minute could be judged."""
    outages: list[Outage]
    per_day: dict[MinuteClass, np.ndarray]

    @property
    def allowed_down_min(self) -> float | None:
        if self.uplink.sla_pct is None:
            return None
        judged = self.minutes[MinuteClass.UP] + self.minutes[MinuteClass.DOWN_ISP]
        return judged * (100 - self.uplink.sla_pct) / 100

    @property
    def sla_met(self) -> bool | None:
        if self.uplink.sla_pct is None or self.availability_pct is None:
            return None
        return self.availability_pct >= self.uplink.sla_pct


def summarise(uplink: Uplink, month: ReportMonth, m: UplinkMinutes) -> UplinkMonth:
    classes = classify(m)
    counts = {c: int((classes == c).sum()) for c in MinuteClass}
    judged = counts[MinuteClass.UP] + counts[MinuteClass.DOWN_ISP]
    availability = 100 * counts[MinuteClass.UP] / judged if judged else None
    per_day = {c: month.per_day(classes == c) for c in MinuteClass}
    return UplinkMonth(uplink, counts, availability, outages(classes, m), per_day)


def read_inputs(source: ReportSource, site: Site) -> dict[str, UplinkMinutes]:
    """Per uplink of `site`, its minutes from InfluxDB: coverage of the uplinks and inverters, and the
    minutes holding failing readings, link-down readings or an inverter without output (five
    statements for the whole site, run at once)."""
    month = source.month
    (uplinks, _), (inverters, _), failing, link_down, power_out = source.together(
        lambda: source.coverage("uplink", "loss_pct"), lambda: source.coverage("inverter", "load_w"),
        lambda: source.minute_counts("uplink", "count(loss_pct) AS n, mean(loss_pct) AS loss",
                                     f"loss_pct > {DOWN_LOSS_PCT}"),
        lambda: source.minute_counts("uplink", "count(loss_pct) AS n", "link_up = false"),
        lambda: source.minute_counts("inverter", "count(load_w) AS n", "load_w <= 0"))
    out: dict[str, UplinkMinutes] = {}
    for uplink in site.uplinks:
        coverage = uplinks.get(uplink.id) or all_missing(month)
        failed = failing.get(uplink.id)
        down = minute_values(month, failed, "n") >= coverage.per_minute / 2
        power = power_missing = None
        if uplink.powered_by is not None:
            power = minute_mask(month, power_out.get(uplink.powered_by))
            power_missing = (inverters.get(uplink.powered_by) or all_missing(month)).missing
        out[uplink.id] = UplinkMinutes(down, coverage.missing, minute_values(month, failed, "loss", np.nan),
                                       minute_mask(month, link_down.get(uplink.id)),
                                       month.mask_of(uplink.maintenance_intervals(site.tz)), power, power_missing)
    return out


def uplink_months(site: Site, month: ReportMonth, inputs: dict[str, UplinkMinutes]) -> list[UplinkMonth]:
    """Each uplink of `site` summarised for `month`, in the site file's order (what the report and the
    stored figures are made of)."""
    return [summarise(u, month, inputs[u.id]) for u in site.uplinks]


def _fmt_pct(value: float | None) -> str:
    return "not judged" if value is None else f"{value:.3f} %"


def _hm(minutes: float) -> str:
    return f"{int(minutes) // 60} h {int(minutes) % 60:02d} min"


def _not_judged(site: Site, month: ReportMonth, results: list[UplinkMonth], inputs: dict[str, UplinkMinutes]
                ) -> list[str]:
    notes: list[str] = []
    for r in results:
        m = inputs[r.uplink.id]
        name = f"{r.uplink.id} ({r.uplink.isp})"
        if r.uplink.sla_pct is None:
            notes.append(f"{name}: the site file gives no sla_pct, so availability is not judged against a contract")
        gaps = int(m.missing.sum())
        if gaps == month.minutes:
            notes.append(f"{name}: no readings at all this month")
        elif gaps:
            first = int(np.argmin(m.missing))
            appeared = first > 0 and m.missing[:first].all()
            late = f"; first reading {month.local(first):%Y-%m-%d %H:%M}" if appeared else ""
            notes.append(f"{name}: {_hm(gaps)} without readings (facmon had no data; never counted as the ISP's "
                         f"downtime){late}")
        unknown_cause = r.minutes[MinuteClass.UNKNOWN] - gaps
        if unknown_cause:
            notes.append(f"{name}: {_hm(unknown_cause)} down with no reading of the router's inverter "
                         f"{r.uplink.powered_by}: cause not judged")
    return notes


def isp_document(site: Site, month: ReportMonth, inputs: dict[str, UplinkMinutes]) -> ReportDocument:
    """The ISP report of `site` for `month` from its uplinks' minutes."""
    results = uplink_months(site, month, inputs)
    summary: list[tuple[str, str]] = []
    outage_rows = []
    for r in results:
        sla = "" if r.uplink.sla_pct is None else (
            f" (SLA {r.uplink.sla_pct} %: {'met' if r.sla_met else 'MISSED'})" if r.sla_met is not None else "")
        summary.append((f"{r.uplink.isp} ({r.uplink.id})", f"{_fmt_pct(r.availability_pct)}{sla}; ISP down "
                        f"{_hm(r.minutes[MinuteClass.DOWN_ISP])}, our power {_hm(r.minutes[MinuteClass.DOWN_POWER])}"
                        f", maintenance {_hm(r.minutes[MinuteClass.MAINTENANCE])}, no data "
                        f"{_hm(r.minutes[MinuteClass.UNKNOWN])}"))
        for o in r.outages:
            outage_rows.append((r.uplink.id, r.uplink.isp, f"{month.local(o.start_minute):%Y-%m-%d %H:%M}",
                                f"{month.local(o.end_minute):%Y-%m-%d %H:%M}", o.duration_min, CAUSES[o.cause],
                                round(o.loss_pct, 1), o.link_down_min, o.power_out_min))
    if not site.uplinks:
        summary.append(("Uplinks", "the site file lists none"))
    minutes_table = Table("minutes", "Minutes by class", ("uplink", "isp", "sla_pct", "availability_pct", "up",
                                                          "down_isp", "down_power", "maintenance", "unknown",
                                                          "allowed_down_min"),
                          tuple((r.uplink.id, r.uplink.isp, r.uplink.sla_pct,
                                 None if r.availability_pct is None else round(r.availability_pct, 4),
                                 *(r.minutes[c] for c in MinuteClass),
                                 None if r.allowed_down_min is None else round(r.allowed_down_min, 1))
                                for r in results))
    outage_table = Table("outages", "Outages", ("uplink", "isp", "start", "end", "duration_min", "cause",
                                                "loss_pct", "link_down_min", "power_out_min"), tuple(outage_rows))
    days = tuple(f"{d.day}" for d in month.days)
    labels = tuple(r.uplink.id for r in results)
    by_cause = {name: tuple(float(r.minutes[c]) / 60 for r in results)
                for c, name in ((MinuteClass.DOWN_ISP, "ISP"), (MinuteClass.DOWN_POWER, "our power"),
                                (MinuteClass.MAINTENANCE, "maintenance"), (MinuteClass.UNKNOWN, "no data"))}
    # Two charts whatever the number of uplinks: a site with twenty must not take a minute to draw.
    charts = (Chart("causes", "Hours down by cause, per uplink", labels, by_cause, "hours", "stacked"),
              Chart("daily", "Minutes the ISP was down, per day", days,
                    {r.uplink.id: tuple(float(v) for v in r.per_day[MinuteClass.DOWN_ISP]) for r in results},
                    "minutes", "stacked"))
    figures = {r.uplink.id: {"availability_pct": r.availability_pct, "sla_pct": r.uplink.sla_pct,
                             "sla_met": r.sla_met, "minutes": {c.name.lower(): r.minutes[c] for c in MinuteClass},
                             "minutes_per_day": {c.name.lower(): [int(v) for v in r.per_day[c]] for c in MinuteClass},
                             "outages": [{"start": month.local(o.start_minute).isoformat(),
                                          "end": month.local(o.end_minute).isoformat(),
                                          "duration_min": o.duration_min, "cause": o.cause.name.lower(),
                                          "loss_pct": o.loss_pct, "link_down_min": o.link_down_min,
                                          "power_out_min": o.power_out_min}
                                         for o in r.outages]} for r in results}
    return ReportDocument("isp", f"ISP availability {month}", site.id, site.name, str(month), site.timezone,
                          tuple(summary), (minutes_table, outage_table), charts,
                          tuple(_not_judged(site, month, results, inputs)), figures)


def isp_report(source: ReportSource, site: Site) -> ReportDocument:
    return isp_document(site, source.month, read_inputs(source, site))
